"""The docker CLI, driven through asyncio subprocesses; knows nothing about lab layout.

pgha does not use the docker SDK: the CLI is what operators have and debug with, and its
errors are the ones they can search for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import shutil
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from pgha.errors import LabError

log = logging.getLogger("pgha.lab")

#: A sink for human-readable progress lines (the CLI prints them; the default logs them).
Progress = Callable[[str], None]

START_DOCKERD = (
    "start dockerd (`dockerd >/var/log/dockerd.log 2>&1 &`, or `systemctl start docker` "
    "where systemd runs), or run `scripts/dev-setup`"
)


def log_progress(line: str) -> None:
    log.info("%s", line)


class DockerResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    argv: list[str]
    exit_code: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


def _docker_binary() -> str:
    path = shutil.which("docker")
    if path is None:
        raise LabError(
            "the lab needs the docker CLI and engine, and `docker` is not on PATH: install "
            "them (`apt-get install -y docker.io`), then " + START_DOCKERD
        )
    return path


async def docker(
    *args: str,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
) -> DockerResult:
    """Run one docker CLI command and collect its output.

    :param check: raise :class:`LabError` on a non-zero exit.
    :raises LabError: docker is missing, the command timed out, or (with ``check``) failed.
    """
    argv = [_docker_binary(), *args]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env} if env else None,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise LabError(
            f"`docker {shlex.join(args)}` did not finish within {timeout:.0f} s"
        ) from None
    result = DockerResult(
        argv=["docker", *args],
        exit_code=proc.returncode if proc.returncode is not None else 255,
        stdout=out,
        stderr=err.decode(errors="replace").strip(),
    )
    if check and not result.ok:
        raise docker_failed(result)
    return result


def docker_failed(result: DockerResult) -> LabError:
    """The LabError for a failed docker command, with a hint when the daemon is down."""
    detail = result.stderr or result.text.strip() or "(no output)"
    msg = f"`{shlex.join(result.argv)}` exited {result.exit_code}: {detail}"
    if "Cannot connect to the Docker daemon" in detail or "docker daemon" in detail.lower():
        msg += f"\nThe docker engine is not running: {START_DOCKERD}."
    return LabError(msg)


async def check_engine() -> str:
    """Make sure the docker engine answers.

    :returns: the server version.
    :raises LabError: saying how to install or start docker.
    """
    result = await docker("version", "--format", "{{.Server.Version}}", check=False, timeout=30)
    version = result.text.strip()
    if not result.ok or not version:
        raise LabError(
            "the lab needs a running docker engine and the docker CLI cannot reach one "
            f"({result.stderr or 'no server version'}): {START_DOCKERD}"
        )
    return version


async def inspect(kind: str, name: str) -> dict[str, Any] | None:
    """``docker <kind> inspect NAME`` as a dict, or None when there is no such object."""
    result = await docker(kind, "inspect", name, check=False)
    if not result.ok:
        if "No such" in result.stderr or "not found" in result.stderr:
            return None
        raise docker_failed(result)
    data = json.loads(result.stdout)
    return data[0] if data else None
