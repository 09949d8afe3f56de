"""The lab host image: built once from debootstrap + host.Dockerfile, cached by recipe hash.

Builds and tags images only; never creates containers.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pgha.errors import LabError
from pgha.lab.docker import Progress, inspect, log_progress
from pgha.settings import state_dir

BASE_IMAGE = "pgha-lab-base:bookworm"
#: Used instead of debootstrap when present locally (a machine with a registry).
REGISTRY_BASE = "debian:bookworm"
IMAGE_REPO = "pgha-lab"
HERE = Path(__file__).parent
DOCKERFILE = HERE / "host.Dockerfile"
FILES = HERE / "files"

DEBOOTSTRAP_PACKAGES = (
    "systemd,systemd-sysv,dbus,openssh-server,iproute2,python3,sudo,ca-certificates,"
    "procps,iputils-ping,less"
)
#: debootstrap prints one line per package and step; these are noise as progress.
_PER_PACKAGE = re.compile(
    r"^I: (?:(?:Retrieving|Validating) \S+ \S+|(?:Extracting|Unpacking|Configuring) \S+\.\.\.)$"
)
DEBOOTSTRAP_TIMEOUT = 900.0
BUILD_TIMEOUT = 900.0


def recipe_hash() -> str:
    """sha256 over the Dockerfile and the files it copies: a changed recipe gets a new tag."""
    h = hashlib.sha256()
    for path in [DOCKERFILE, *sorted(p for p in FILES.iterdir() if p.is_file())]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def image_tag() -> str:
    """The tag of the image the current recipe builds, e.g. ``pgha-lab:3f2a9c0d1e4b``."""
    return f"{IMAGE_REPO}:{recipe_hash()[:12]}"


async def ensure_image(progress: Progress = log_progress) -> str:
    """Build the lab image unless an image with the current recipe's tag exists. Idempotent.

    :returns: the image tag.
    :raises LabError: debootstrap, import or build failed (with the tail of its output).
    """
    tag = image_tag()
    if await inspect("image", tag) is not None:
        return tag
    started = time.monotonic()
    progress(f"building lab image {tag} (first time: about 1-2 minutes)")
    base = await _ensure_base(progress)
    with tempfile.TemporaryDirectory(prefix="pgha-lab-build-") as ctx:
        # A context with only the recipe's files: the package directory holds Python code.
        shutil.copy(DOCKERFILE, Path(ctx) / "Dockerfile")
        for f in FILES.iterdir():
            if f.is_file():
                shutil.copy(f, Path(ctx) / f.name)
        argv = [
            "docker", "build", "--pull=false", "--build-arg", f"BASE={base}",
            "--label", f"pgha.lab.recipe={recipe_hash()}", "-t", tag, ctx,
        ]  # fmt: skip
        # The legacy builder: BuildKit needs the buildx plugin, which Debian's docker.io
        # lacks, and nothing here needs BuildKit.
        await run_streaming(
            argv, progress, keep=lambda line: line.startswith("Step "),
            env={"DOCKER_BUILDKIT": "0"}, timeout=BUILD_TIMEOUT,
        )  # fmt: skip
    progress(f"built lab image {tag} in {time.monotonic() - started:.0f} s")
    return tag


async def _ensure_base(progress: Progress) -> str:
    if await inspect("image", BASE_IMAGE) is not None:
        return BASE_IMAGE
    if await inspect("image", REGISTRY_BASE) is not None:
        progress(f"using local image {REGISTRY_BASE} as the base (no debootstrap needed)")
        return REGISTRY_BASE
    if shutil.which("debootstrap") is None:
        raise LabError(
            f"building the lab image needs debootstrap (or a local {REGISTRY_BASE} image): "
            "`apt-get install -y debootstrap`, or run `scripts/dev-setup`"
        )
    rootfs = state_dir() / "lab" / "rootfs"
    # A rootfs left by an interrupted run would make debootstrap fail or mix releases.
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        progress(f"debootstrap bookworm into {rootfs} (about 45 s)")
        await run_streaming(
            ["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}",
             "bookworm", str(rootfs)],
            progress, keep=lambda line: not _PER_PACKAGE.match(line),
            timeout=DEBOOTSTRAP_TIMEOUT,
        )  # fmt: skip
        progress(f"importing the rootfs as {BASE_IMAGE}")
        await _import(rootfs, BASE_IMAGE)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE


async def _import(rootfs: Path, name: str) -> None:
    """``tar -C rootfs -c . | docker import - name``, failing if either side fails."""
    read_end, write_end = os.pipe()
    try:
        tar = await asyncio.create_subprocess_exec(
            "tar", "-C", str(rootfs), "--numeric-owner", "-c", ".",
            stdout=write_end, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        imp = await asyncio.create_subprocess_exec(
            "docker", "import", "-", name,
            stdin=read_end, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        # The children hold their own copies; ours must go or docker never sees EOF.
        os.close(read_end)
        os.close(write_end)
    (_, tar_err), (_, imp_err) = await asyncio.wait_for(
        asyncio.gather(tar.communicate(), imp.communicate()), DEBOOTSTRAP_TIMEOUT
    )
    if tar.returncode or imp.returncode:
        raise LabError(
            f"importing {rootfs} as {name} failed: tar exited {tar.returncode} "
            f"({tar_err.decode(errors='replace').strip()[-500:]}), docker import exited "
            f"{imp.returncode} ({imp_err.decode(errors='replace').strip()[-500:]})"
        )


async def run_streaming(
    argv: list[str],
    progress: Progress,
    *,
    keep: Callable[[str], bool],
    env: dict[str, str] | None = None,
    timeout: float,
) -> None:
    """Run a long command, passing the output lines ``keep`` accepts to ``progress``.

    :raises LabError: on a non-zero exit or timeout, with the last 30 lines of output.
    """
    name = Path(argv[0]).name
    tail: deque[str] = deque(maxlen=30)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env} if env else None,
    )

    async def pump() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            tail.append(line)
            if keep(line):
                progress(f"  {name}: {line[:120]}")

    try:
        await asyncio.wait_for(asyncio.gather(pump(), proc.wait()), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise LabError(
            f"`{' '.join(argv[:3])} ...` did not finish within {timeout:.0f} s; last output:\n"
            + "\n".join(tail)
        ) from None
    if proc.returncode:
        raise LabError(
            f"`{' '.join(argv)}` exited {proc.returncode}; last output:\n" + "\n".join(tail)
        )
