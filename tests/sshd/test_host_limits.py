"""Commands against a real sshd end when pgha says so: time limits, cancellation, channels.

Every check that a remote command is gone looks at the real processes with pgrep (the
test sshd runs on this machine).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from pydantic import SecretStr

from pgha.errors import CommandTimedOut, HostUnreachable
from pgha.hosts import connections
from pgha.hosts import host as host_module
from pgha.hosts.host import connect
from pgha.models import HostTarget
from tests.sshd.conftest import SudoUsers

pytestmark = pytest.mark.sshd

Login = tuple[HostTarget, SecretStr | None]


@pytest.fixture(params=["self", "nopasswd", "password"])
def login(request: pytest.FixtureRequest, sshd: HostTarget) -> Login:
    """The test sshd as the current user (root here), or as a sudo user of either kind."""
    if request.param == "self":
        return sshd, None
    users: SudoUsers = request.getfixturevalue("sudo_users")
    if request.param == "nopasswd":
        return users.nopasswd, None
    return users.password, users.secret


def own_pool(target: HostTarget, tmp_path: Path) -> HostTarget:
    """The same host under another pool key, so the test gets a connection of its own."""
    known = tmp_path / "known_hosts"
    shutil.copy(str(target.known_hosts), known)
    return target.model_copy(update={"known_hosts": str(known)})


def marker() -> str:
    """A unique sleep duration, e.g. ``27.384920``, to find the remote process by."""
    return f"27.{secrets.randbelow(900_000) + 100_000}"


def remote_pids(seconds: str) -> list[int]:
    """Processes whose command line holds ``sleep <seconds>``; the [.] keeps pgrep's own
    command line from matching."""
    pattern = "sleep " + seconds.replace(".", "[.]")
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


async def eventually(check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


# --- time limits ----------------------------------------------------------------------------


async def test_run_past_timeout_raises_command_timed_out_and_host_stops_it(
    login: Login,
) -> None:
    target, password = login
    m = marker()
    async with connect(target, sudo_password=password) as host:
        await host.run(["true"])  # sudo checked beforehand: time only the command
        started = time.monotonic()
        with pytest.raises(CommandTimedOut) as caught:
            await host.run(["sleep", m], timeout=1)
        took = time.monotonic() - started
        assert (await host.run(["echo", "still usable"])).stdout == "still usable\n"
    assert 1 <= took < 3
    err = caught.value
    assert (err.host, err.command, err.limit_s) == (target.name, f"sleep {m}", 1)
    assert str(err) == (
        f"host {target.name} (127.0.0.1): `sleep {m}` did not finish within 1 s; "
        "it was stopped on the host"
    )
    await eventually(lambda: not remote_pids(m), within=2)


async def test_run_ignoring_term_past_timeout_is_killed_after_grace(sshd: HostTarget) -> None:
    m = marker()
    async with connect(sshd) as host:
        started = time.monotonic()
        with pytest.raises(CommandTimedOut, match="it ignored TERM and was killed 5 s later"):
            # An ignored signal stays ignored across exec: sleep ignores TERM too.
            await host.run(f"trap '' TERM; sleep {m}", timeout=1)
    assert 6 <= time.monotonic() - started < 9
    await eventually(lambda: not remote_pids(m), within=2)


async def test_run_exit_124_within_timeout_is_the_commands_own(sshd: HostTarget) -> None:
    async with connect(sshd) as host:
        r = await host.run("exit 124", timeout=5, check=False)
    assert r.exit_code == 124


async def test_run_timeout_is_enforced_by_host_when_connection_dies(
    sshd: HostTarget, tmp_path: Path
) -> None:
    target = own_pool(sshd, tmp_path)
    m = marker()
    async with connect(target) as host:
        task = asyncio.create_task(host.run(["sleep", m], timeout=2))
        await eventually(lambda: bool(remote_pids(m)), within=5)
        conn = host._conn
        conn.abort()  # as if the worker died: nothing on our side can stop the command
        with pytest.raises(HostUnreachable, match="SSH link failed during `sleep"):
            await task
    # sshd neither signals nor hangs up a command without a PTY when its client is gone;
    # only `timeout` on the host ends it, at its limit.
    assert remote_pids(m)
    await eventually(lambda: not remote_pids(m), within=3)
    async with connect(target) as again:
        assert again._conn is not conn  # the broken connection left the pool
        assert (await again.run(["echo", "ok"])).stdout == "ok\n"


# --- cancellation ---------------------------------------------------------------------------


async def test_run_cancelled_stops_the_remote_command(login: Login) -> None:
    target, password = login
    m = marker()
    async with connect(target, sudo_password=password) as host:
        # A child of a child: the whole process group must go, not just the shell.
        task = asyncio.create_task(host.run(f"sh -c 'sleep {m}; echo late'; echo late"))
        await eventually(lambda: bool(remote_pids(m)), within=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: not remote_pids(m), within=3)
        assert (await host.run(["echo", "still usable"])).stdout == "still usable\n"


# --- channels -------------------------------------------------------------------------------


async def test_run_refused_channels_are_retried_and_long_command_survives(
    sshd: HostTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Let pgha open more channels than the test sshd's MaxSessions 10, as happens when
    # a hardened sshd allows fewer than pgha's own limit.
    monkeypatch.setattr(connections, "MAX_CHANNELS_PER_CONNECTION", 40)
    # 40 commands through 9 free sessions retry in step; on a loaded 2-core machine the
    # product's 7 s schedule sometimes ran out before the last got a channel. A longer
    # tail here tests the same thing (refusals are retried, nothing else is hurt).
    monkeypatch.setattr(host_module, "CHANNEL_OPEN_RETRY_S",
                        (*host_module.CHANNEL_OPEN_RETRY_S, 3.0, 3.0, 3.0))  # fmt: skip
    refused = 0
    async with connect(own_pool(sshd, tmp_path)) as host:
        real = host._conn.create_process

        async def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal refused
            try:
                return await real(*args, **kwargs)
            except asyncssh.ChannelOpenError:
                refused += 1
                raise

        monkeypatch.setattr(host._conn, "create_process", counting)
        long = asyncio.create_task(host.run("sleep 3; echo survived"))
        await asyncio.sleep(0.3)
        results = await asyncio.gather(*(host.run(f"sleep 0.3; echo {i}") for i in range(40)))
        assert (await long).stdout == "survived\n"
    assert refused > 0  # sshd did refuse channels, and nothing else was hurt by it
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(40)]


async def test_run_channel_refused_until_retries_run_out_keeps_the_connection(
    sshd: HostTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_module, "CHANNEL_OPEN_RETRY_S", (0.01, 0.02))
    m = marker().replace("27.", "2.")
    async with connect(own_pool(sshd, tmp_path)) as host:
        conn = host._conn
        # Take every session sshd allows (MaxSessions 10), around pgha's own limit.
        held = [await conn.create_process(f"sleep {m}") for _ in range(10)]
        with pytest.raises(HostUnreachable) as caught:
            await host.run(["echo", "hi"])
        assert not conn.is_closed()
        await asyncio.gather(*(p.wait() for p in held))  # their commands were not hurt
        assert all(p.exit_status == 0 for p in held)
        assert (await host.run(["echo", "hi"])).stdout == "hi\n"
        assert host._conn is conn
    assert "refused to open a channel for `echo hi` 3 times" in str(caught.value)
    assert "MaxSessions" in str(caught.value)
