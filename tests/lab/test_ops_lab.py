"""Converge ops on a real systemd lab host (backup1): packages, files, units, time limits.

Every effect is checked independently of pgha, with `docker exec` into the container.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from pgha.errors import CommandTimedOut
from pgha.hosts.facts import packages as package_facts
from pgha.hosts.host import Host, connect
from pgha.hosts.ops import files, packages, systemd
from pgha.spec import ClusterSpec
from tests.lab.helpers import docker_exec, eventually

pytestmark = pytest.mark.lab

HOST = "backup1"
CONTAINER = f"pgha-lab-{HOST}"
PACKAGE = "tree"


@pytest.fixture
async def backup1(lab_spec: ClusterSpec) -> AsyncIterator[Host]:
    async with connect(lab_spec.target(HOST)) as host:
        yield host


async def test_ensure_packages_installs_tree_then_reports_unchanged(backup1: Host) -> None:
    purge = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y", "-q", PACKAGE]
    await docker_exec(HOST, *purge)  # start from a host without it, whatever ran before
    try:
        first = await packages.ensure_packages(backup1, {PACKAGE: None})
        assert first.changed, first.summary
        assert first.summary == f"installed {PACKAGE}"
        code, status = await docker_exec(
            HOST, "dpkg-query", "-W", "-f", "${Status} ${Version}", PACKAGE
        )
        assert code == 0 and status.startswith("install ok installed "), status
        version = status.rsplit(" ", 1)[1]

        second = await packages.ensure_packages(backup1, {PACKAGE: None})
        assert not second.changed
        assert second.summary == f"all wanted packages are installed: {PACKAGE}={version}"
        assert second.commands == []
    finally:
        await docker_exec(HOST, *purge)
    assert (await package_facts.installed_packages(backup1, [PACKAGE]))[PACKAGE] is None


async def test_unit_written_started_enabled_then_noop_without_restart_then_stopped(
    backup1: Host,
) -> None:
    unit = f"pgha-labtest-{uuid.uuid4().hex[:8]}.service"
    path = f"/etc/systemd/system/{unit}"
    free_port = (
        "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
    )
    port = int((await backup1.run(["python3", "-c", free_port])).stdout)
    content = (
        "[Unit]\n"
        "Description=pgha lab test: a small HTTP server\n"
        "\n"
        "[Service]\n"
        f"ExecStart=/usr/bin/python3 -m http.server --bind 127.0.0.1 --directory /tmp {port}\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )

    async def state(verb: str) -> str:
        return (await docker_exec(HOST, "systemctl", verb, unit))[1]

    async def main_pid() -> str:
        return (await docker_exec(HOST, "systemctl", "show", "-p", "MainPID", "--value", unit))[1]

    async def answers() -> bool:
        fetch = f"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/', timeout=2)"
        return (await docker_exec(HOST, "python3", "-c", fetch))[0] == 0

    try:
        written = await files.ensure_file(backup1, path, content, mode=0o644)
        assert written.changed and written.summary.startswith(f"created {path}")
        await systemd.daemon_reload(backup1, [unit])

        started = await systemd.ensure_unit(backup1, unit, running=True, enabled=True)
        assert started.changed
        assert started.summary == f"{unit}: started, enabled"
        assert started.commands == [f"systemctl start {unit}", f"systemctl enable {unit}"]
        assert await state("is-active") == "active"
        assert await state("is-enabled") == "enabled"
        await eventually(answers, within=15)
        pid = await main_pid()
        assert pid not in ("", "0")

        again = await systemd.ensure_unit(backup1, unit, running=True, enabled=True)
        assert not again.changed
        assert again.summary == f"{unit} is running and enabled"
        assert await main_pid() == pid  # not restarted

        stopped = await systemd.ensure_unit(backup1, unit, running=False, enabled=False)
        assert stopped.changed
        assert stopped.summary == f"{unit}: stopped, disabled"
        assert await state("is-active") == "inactive"
        assert await state("is-enabled") == "disabled"
        assert not await answers()
    finally:
        await docker_exec(HOST, "systemctl", "disable", "--now", unit)
        await docker_exec(HOST, "rm", "-f", path)
        await docker_exec(HOST, "systemctl", "daemon-reload")
    assert (await docker_exec(HOST, "test", "-e", path))[0] != 0


async def test_command_past_timeout_or_cancelled_is_gone_from_host(backup1: Host) -> None:
    async def running(seconds: str) -> bool:
        # [.]: the pattern does not match pgrep's own command line.
        return (await docker_exec(HOST, "pgrep", "-f", "sleep " + seconds.replace(".", "[.]")))[
            0
        ] == 0

    timed = f"27.{uuid.uuid4().int % 900_000 + 100_000}"
    with pytest.raises(CommandTimedOut, match=f"`sleep {timed}` did not finish within 1 s"):
        await backup1.run(["sleep", timed], timeout=1)
    assert not await running(timed)

    cancelled = f"28.{uuid.uuid4().int % 900_000 + 100_000}"
    task = asyncio.create_task(backup1.run(["sleep", cancelled]))
    await eventually(lambda: running(cancelled), within=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def gone() -> bool:
        return not await running(cancelled)

    await eventually(gone, within=5)
