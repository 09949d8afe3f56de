"""The Patroni wheel of a release from PyPI, fetched once by the worker and kept in its
state directory, so that database hosts never need to reach PyPI (``patroni.pypi_version``).

pip does the download (its index, proxy and CA settings are the worker machine's own);
Patroni's wheel is pure Python (py3-none-any), so one file serves every host.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from pgha.settings import state_dir

DOWNLOAD_TIMEOUT_S = 180.0
_locks: dict[str, asyncio.Lock] = {}


class WheelUnavailable(Exception):
    """pip could not download the release (no such version, or no index reachable)."""


def wheel_dir() -> Path:
    return state_dir() / "wheels"


def wheel_name(version: str) -> str:
    return f"patroni-{version}-py3-none-any.whl"


async def patroni_wheel(version: str) -> Path:
    """The wheel of Patroni ``version``: the cached file, else downloaded with pip (once per
    version even when several hosts ask at the same time; written under a temporary name
    and renamed, so a half download is never taken for the wheel).

    :raises WheelUnavailable: with pip's own last lines and what to do.
    """
    path = wheel_dir() / wheel_name(version)
    async with _locks.setdefault(version, asyncio.Lock()):
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                   ":all:", "--dest", tmp, f"patroni=={version}"]  # fmt: skip
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), DOWNLOAD_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                raise WheelUnavailable(
                    f"pip did not download Patroni {version} within {DOWNLOAD_TIMEOUT_S:g} s"
                ) from None
            got = Path(tmp) / wheel_name(version)
            if proc.returncode != 0 or not got.is_file():
                tail = " | ".join(out.decode(errors="replace").strip().splitlines()[-3:])
                raise WheelUnavailable(
                    f"the worker could not download Patroni {version} from PyPI ({tail}); "
                    f"check patroni.pypi_version, or put {wheel_name(version)} into "
                    f"{path.parent} by hand (sites without PyPI)"
                )
            got.replace(path)
    return path
