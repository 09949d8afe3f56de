"""The hosts layer against a real OpenSSH sshd on loopback: connections, run, facts, ops."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from pgha.errors import (
    PERMANENT_HOST_ERRORS,
    CommandFailed,
    HostKeyMismatch,
    HostKeyUnknown,
    HostLoginRefused,
    HostUnreachable,
    SshKeyUnusable,
)
from pgha.hosts.host import connect
from pgha.models import HostTarget

pytestmark = pytest.mark.sshd

KeyGen = Callable[[Path], Path]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- run ------------------------------------------------------------------------------------


async def test_run_command_returns_stdout_stderr_and_exit_code(sshd: HostTarget) -> None:
    async with connect(sshd) as host:
        r = await host.run("echo out; echo err >&2; exit 3", check=False)
    assert (r.stdout, r.stderr, r.exit_code, r.ok) == ("out\n", "err\n", 3, False)
    assert r.host == "local"


async def test_run_argv_is_quoted_word_by_word(sshd: HostTarget) -> None:
    async with connect(sshd) as host:
        r = await host.run(["printf", "%s|", "a b", "$HOME", "it's"])
    assert r.stdout == "a b|$HOME|it's|"


async def test_run_input_reaches_stdin(sshd: HostTarget) -> None:
    async with connect(sshd) as host:
        r = await host.run(["wc", "-c"], input="héllo\n")
    assert r.stdout.strip() == "7"


async def test_run_failure_with_check_raises_command_failed(sshd: HostTarget) -> None:
    async with connect(sshd) as host:
        with pytest.raises(CommandFailed) as caught:
            await host.run("for i in $(seq 1 40); do echo line$i >&2; done; exit 7")
    err = caught.value
    assert (err.host, err.exit_code) == ("local", 7)
    assert err.command.startswith("for i in")
    assert err.stderr_tail.splitlines() == [f"line{i}" for i in range(26, 41)]
    assert str(err).startswith("host local (127.0.0.1): `for i in")
    assert "exited 7" in str(err)


async def test_run_secret_is_masked_in_command_failed(sshd: HostTarget) -> None:
    secret = SecretStr("s3cr3t-pw")
    async with connect(sshd) as host:
        with pytest.raises(CommandFailed) as caught:
            await host.run("echo 'password s3cr3t-pw rejected' >&2; exit 1", secrets=[secret])
        with pytest.raises(CommandFailed) as on_stdout:
            await host.run("echo s3cr3t-pw; exit 1", secrets=[secret])
    for err in (caught.value, on_stdout.value):
        assert "s3cr3t-pw" not in str(err)
        assert "********" in err.command
    assert caught.value.stderr_tail == "password ******** rejected"
    assert on_stdout.value.stderr_tail == "********"


async def test_run_without_input_stdin_is_empty(sshd: HostTarget) -> None:
    async with connect(sshd) as host:
        r = await host.run(["cat"], timeout=10)
    assert (r.stdout, r.exit_code) == ("", 0)


async def test_connect_twice_reuses_connection(sshd: HostTarget) -> None:
    async with connect(sshd) as first, connect(sshd) as second:
        assert first._conn is second._conn
        await first.run("true")
    async with connect(sshd) as third:
        assert third._conn is first._conn


async def test_run_40_concurrent_commands_all_succeed(sshd: HostTarget) -> None:
    # sshd runs with MaxSessions 10: the host layer must bound its channels below that.
    async with connect(sshd) as host:
        results = await asyncio.gather(*(host.run(f"sleep 0.05; echo {i}") for i in range(40)))
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(40)]


# --- connecting -----------------------------------------------------------------------------


async def test_connect_other_host_key_raises_host_key_mismatch(
    sshd: HostTarget, tmp_path: Path, ssh_keygen: KeyGen
) -> None:
    other = ssh_keygen(tmp_path / "other_host_key")
    kind, key = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    target = sshd.model_copy(update={"known_hosts": str(known)})
    with pytest.raises(HostKeyMismatch) as caught:
        async with connect(target):
            pass
    msg = str(caught.value)
    assert caught.value.host == "local"
    assert msg.startswith("host local (127.0.0.1): the SSH host key does not match")
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}' -f {known}" in msg


async def test_connect_host_missing_from_known_hosts_raises_host_key_unknown(
    sshd: HostTarget, tmp_path: Path, ssh_keygen: KeyGen
) -> None:
    other = ssh_keygen(tmp_path / "other_host_key")
    kind, key = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"db9.example {kind} {key}\n")
    target = sshd.model_copy(update={"known_hosts": str(known)})
    with pytest.raises(HostKeyUnknown) as caught:
        async with connect(target):
            pass
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}" in str(caught.value)


async def test_connect_known_hosts_file_missing_raises_host_key_unknown(
    sshd: HostTarget, tmp_path: Path
) -> None:
    target = sshd.model_copy(update={"known_hosts": str(tmp_path / "nope")})
    with pytest.raises(HostKeyUnknown, match="does not exist"):
        async with connect(target):
            pass


async def test_connect_closed_port_raises_host_unreachable(sshd: HostTarget) -> None:
    target = sshd.model_copy(update={"port": free_port()})
    with pytest.raises(HostUnreachable) as caught:
        async with connect(target):
            pass
    assert f"cannot connect over SSH to port {target.port}" in str(caught.value)


async def test_connect_wrong_client_key_raises_host_login_refused(
    sshd: HostTarget, tmp_path: Path, ssh_keygen: KeyGen
) -> None:
    target = sshd.model_copy(update={"key_file": str(ssh_keygen(tmp_path / "stranger"))})
    with pytest.raises(HostLoginRefused) as caught:
        async with connect(target):
            pass
    assert "authorized_keys" in str(caught.value)


async def test_connect_without_key_file_uses_default_key(
    sshd: HostTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sshd.key_file is not None
    (tmp_path / ".ssh").mkdir()
    for suffix in ("", ".pub"):
        src = Path(sshd.key_file + suffix)
        (tmp_path / ".ssh" / f"id_ed25519{suffix}").write_bytes(src.read_bytes())
    (tmp_path / ".ssh" / "id_ed25519").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    # A distinct pool key (another known_hosts path), so this really opens a connection.
    known = tmp_path / "known_hosts"
    known.write_bytes(Path(str(sshd.known_hosts)).read_bytes())
    target = sshd.model_copy(update={"key_file": None, "known_hosts": str(known)})
    async with connect(target) as host:
        assert (await host.run("echo hi")).stdout == "hi\n"


# --- the client key -------------------------------------------------------------------------


def _encrypted_key(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(path)], check=True
    )
    return path


def _junk_key(path: Path) -> Path:
    path.write_text("not a key\n")
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: d / "missing", "does not exist"),
        (lambda d: d, "is a directory, not a private key"),
        (lambda d: _encrypted_key(d / "locked"), "is protected by a passphrase"),
        (lambda d: _junk_key(d / "junk"), "is not a private key pgha can read"),
    ],
    ids=["missing", "directory", "encrypted", "junk"],
)
async def test_connect_unusable_key_file_raises_ssh_key_unusable_at_once(
    sshd: HostTarget, tmp_path: Path, make: Callable[[Path], Path], problem: str
) -> None:
    key = make(tmp_path)
    target = sshd.model_copy(update={"key_file": str(key)})
    started = time.monotonic()
    with pytest.raises(SshKeyUnusable) as caught:
        async with connect(target):
            pass
    assert time.monotonic() - started < 1  # no connection attempt, no retry to wait for
    msg = str(caught.value)
    assert msg.startswith(
        f"host local (127.0.0.1): the SSH key file {key} (ssh.key_file in the cluster spec) "
        f"{problem}"
    )
    assert isinstance(caught.value, PERMANENT_HOST_ERRORS)
