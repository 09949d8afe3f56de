"""The lab's key material and files: identity tar, known_hosts, atomic writes, the lock."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import asyncssh
import pytest

from pgha.errors import LabError
from pgha.lab.state import (
    HOST_KEY,
    ensure_client_key,
    identity_tar,
    key_file,
    known_hosts_text,
    lab_lock,
    new_host_key,
    public_key_from_tar,
    write_atomic,
)


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PGHA_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def _members(data: bytes) -> dict[str, tuple[int, bytes | None]]:
    out: dict[str, tuple[int, bytes | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m)
            out[m.name] = (m.mode, f.read() if f else None)
    return out


def test_identity_tar_modes_are_what_sshd_accepts() -> None:
    private, public = new_host_key("db1")
    members = _members(identity_tar(private, public, "ssh-ed25519 AAAA client"))
    assert members[HOST_KEY] == (0o600, private)
    assert members[f"{HOST_KEY}.pub"] == (0o644, public.encode() + b"\n")
    assert members["root/.ssh"] == (0o700, None)
    assert members["root/.ssh/authorized_keys"] == (0o600, b"ssh-ed25519 AAAA client\n")
    mode, machine_id = members["etc/machine-id"]
    assert mode == 0o444 and machine_id is not None and len(machine_id.strip()) == 32


def test_identity_tar_twice_gives_different_machine_ids() -> None:
    private, public = new_host_key("db1")
    a = _members(identity_tar(private, public, "k"))["etc/machine-id"]
    b = _members(identity_tar(private, public, "k"))["etc/machine-id"]
    assert a != b


def test_new_host_key_is_loadable_openssh_ed25519() -> None:
    private, public = new_host_key("db2")
    key = asyncssh.import_private_key(private)
    assert key.export_public_key().decode().split()[:2] == public.split()[:2]
    assert public.startswith("ssh-ed25519 ") and public.endswith("root@db2")


def test_public_key_from_tar_reads_docker_cp_output() -> None:
    _, public = new_host_key("db3")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = public.encode() + b"\n"
        info = tarfile.TarInfo("ssh_host_ed25519_key.pub")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert public_key_from_tar(buf.getvalue()) == public


def test_public_key_from_tar_garbage_is_none() -> None:
    assert public_key_from_tar(b"not a tar") is None


def test_known_hosts_text_one_line_per_address() -> None:
    text = known_hosts_text(
        [("10.77.0.11", "ssh-ed25519 AAAA1 root@db1", "db1"),
         ("10.77.0.12", "ssh-ed25519 AAAA2 root@db2", "db2")]
    )  # fmt: skip
    assert text == (
        "10.77.0.11 ssh-ed25519 AAAA1 pgha-lab-db1\n10.77.0.12 ssh-ed25519 AAAA2 pgha-lab-db2\n"
    )


def test_write_atomic_same_content_is_noop(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert write_atomic(path, b"x", 0o600) is True
    assert write_atomic(path, b"x", 0o600) is False
    assert write_atomic(path, b"y", 0o600) is True
    assert path.read_bytes() == b"y"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_ensure_client_key_creates_once_with_private_mode() -> None:
    first = ensure_client_key()
    assert stat.S_IMODE(key_file().stat().st_mode) == 0o600
    assert ensure_client_key() == first
    assert first.startswith("ssh-ed25519 ")


async def test_lab_lock_held_elsewhere_times_out_with_holder() -> None:
    async with lab_lock("first"):
        # flock locks belong to the open file description: a second open conflicts.
        with pytest.raises(LabError, match=r"pid .*: first"):
            async with lab_lock("second", wait_s=0.6):
                pass
    async with lab_lock("third", wait_s=0.6):
        pass
