"""Host.run against a scripted connection: which failures close the shared connection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncssh
import pytest

from pgha.errors import PERMANENT_HOST_ERRORS, HostUnreachable, SshKeyUnusable, SudoRefused
from pgha.hosts import connections
from pgha.hosts import host as host_module
from pgha.hosts.host import Host
from pgha.models import HostTarget

TARGET = HostTarget(name="db1", address="10.0.0.11")


class StubProcess:
    async def wait(self) -> asyncssh.SSHCompletedProcess:
        return asyncssh.SSHCompletedProcess(
            env=None,
            command="",
            subsystem=None,
            exit_status=0,
            exit_signal=None,
            returncode=0,
            stdout="ok\n",
            stderr="",
        )


class StubConnection:
    """Fails ``create_process`` with the scripted errors in turn ("hang": never answers)."""

    def __init__(self, *failures: BaseException | str) -> None:
        self.failures = list(failures)
        self.opened = 0
        self.closed = False

    async def create_process(self, *args: Any, **kwargs: Any) -> StubProcess:
        self.opened += 1
        if self.failures:
            failure = self.failures.pop(0)
            if failure == "hang":
                await asyncio.sleep(3600)
            assert isinstance(failure, BaseException)
            raise failure
        return StubProcess()

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_module, "CHANNEL_OPEN_RETRY_S", (0.001, 0.002, 0.003))


@pytest.fixture
def pooled() -> Iterator[Any]:
    """Put a stub connection in the pool the way connect() would; take it out after."""
    added: list[Any] = []

    def put(conn: StubConnection) -> Host:
        key = connections._key(TARGET)
        connections._pool[key] = conn  # type: ignore[assignment]
        added.append(key)
        return Host(TARGET, conn)  # type: ignore[arg-type]

    yield put
    for key in added:
        connections._pool.pop(key, None)


def in_pool(conn: StubConnection) -> bool:
    return connections._pool.get(connections._key(TARGET)) is conn  # type: ignore[comparison-overlap]


async def test_run_channel_refused_is_retried_on_the_same_connection(
    fast_retries: None, pooled: Any
) -> None:
    conn = StubConnection(*[asyncssh.ChannelOpenError(1, "open failed")] * 3)
    host = pooled(conn)
    assert (await host.run(["true"])).stdout == "ok\n"
    assert conn.opened == 4
    assert in_pool(conn) and not conn.closed


async def test_run_channel_refused_past_retries_raises_and_keeps_connection(
    fast_retries: None, pooled: Any
) -> None:
    conn = StubConnection(*[asyncssh.ChannelOpenError(1, "open failed")] * 4)
    host = pooled(conn)
    with pytest.raises(HostUnreachable, match="refused to open a channel for `true` 4 times"):
        await host.run(["true"])
    assert in_pool(conn) and not conn.closed


@pytest.mark.parametrize(
    "failure",
    [asyncssh.ConnectionLost("reset by peer"), asyncssh.DisconnectError(11, "bye")],
    ids=["connection-lost", "disconnect"],
)
async def test_run_broken_connection_is_dropped_from_pool(
    pooled: Any, failure: BaseException
) -> None:
    conn = StubConnection(failure)
    host = pooled(conn)
    with pytest.raises(HostUnreachable, match="SSH link failed during `true`"):
        await host.run(["true"])
    assert not in_pool(conn) and conn.closed


async def test_run_channel_never_answered_raises_host_unreachable(
    pooled: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_module, "CHANNEL_OPEN_S", 0.05)
    conn = StubConnection("hang")
    host = pooled(conn)
    with pytest.raises(HostUnreachable, match=r"did not start `true` within 0\.05 s"):
        await host.run(["true"])
    # Not proof the connection is dead: asyncssh's keepalive decides that.
    assert in_pool(conn) and not conn.closed


def test_permanent_host_errors_include_key_and_sudo_faults() -> None:
    assert SshKeyUnusable in PERMANENT_HOST_ERRORS
    assert SudoRefused in PERMANENT_HOST_ERRORS
