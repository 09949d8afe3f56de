"""The lab's files under pgha's state dir: client key, known_hosts, lock; host identities.

Owns the key material and its on-disk modes; never talks to docker.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import io
import os
import tarfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh

from pgha.errors import LabError
from pgha.settings import state_dir

HOST_KEY = "etc/ssh/ssh_host_ed25519_key"
LOCK_WAIT_S = 900.0


def lab_dir() -> Path:
    """``state_dir()/lab``, absolute (the spec stores paths under it)."""
    path = state_dir().resolve() / "lab"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def key_file() -> Path:
    return lab_dir() / "id_ed25519"


def known_hosts_file() -> Path:
    return lab_dir() / "known_hosts"


def write_atomic(path: Path, data: bytes, mode: int) -> bool:
    """Write through a temporary file and rename. Idempotent.

    :returns: False when the file already had this content and mode (nothing written).
    """
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), mode)  # O_CREAT's mode is masked by the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def ensure_client_key() -> str:
    """The lab's SSH client key pair, created on first use. Idempotent.

    :returns: the public key line (what goes into authorized_keys).
    """
    priv, pub = key_file(), key_file().with_suffix(".pub")
    if not priv.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="pgha-lab")
        write_atomic(priv, key.export_private_key("openssh"), 0o600)
        write_atomic(pub, key.export_public_key("openssh"), 0o644)
    elif not pub.exists():
        key = asyncssh.read_private_key(str(priv))
        write_atomic(pub, key.export_public_key("openssh"), 0o644)
    return pub.read_text().strip()


def new_host_key(host: str) -> tuple[bytes, str]:
    """A fresh ed25519 host key for lab host ``host``: (private key file, public key line)."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"root@{host}")
    return key.export_private_key("openssh"), key.export_public_key("openssh").decode().strip()


def identity_tar(host_private: bytes, host_public: str, authorized_key: str) -> bytes:
    """A tar, to extract at the container's ``/``, holding what makes a lab host unique.

    The host key, a fresh machine-id, and root's authorized_keys, with the modes sshd
    insists on (it ignores a group- or world-readable key or authorized_keys).
    """
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, data: bytes | None, mode: int) -> None:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.uid, info.gid = mode, now, 0, 0
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

        add(HOST_KEY, host_private, 0o600)
        add(f"{HOST_KEY}.pub", host_public.encode() + b"\n", 0o644)
        add("etc/machine-id", uuid.uuid4().hex.encode() + b"\n", 0o444)
        add("root/.ssh", None, 0o700)
        add("root/.ssh/authorized_keys", authorized_key.encode() + b"\n", 0o600)
    return buf.getvalue()


def public_key_from_tar(data: bytes) -> str | None:
    """The host public key line from `docker cp CONTAINER:/etc/ssh/...pub -` output."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                f = tar.extractfile(member)
                if f is not None:
                    line = f.read().decode(errors="replace").strip()
                    return line if line.startswith("ssh-ed25519 ") else None
    except tarfile.TarError:
        return None
    return None


def known_hosts_text(entries: list[tuple[str, str, str]]) -> str:
    """known_hosts lines from (address, public key line, host name) triples."""
    lines = []
    for address, public, name in entries:
        keytype, blob = public.split()[:2]
        lines.append(f"{address} {keytype} {blob} pgha-lab-{name}\n")
    return "".join(lines)


@asynccontextmanager
async def lab_lock(what: str, wait_s: float = LOCK_WAIT_S) -> AsyncIterator[None]:
    """Hold the lab's lock so two `pgha lab` commands never change containers at once.

    :raises LabError: when another command holds it for longer than ``wait_s``.
    """
    path = lab_dir() / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                raise LabError(
                    f"cannot {what}: another `pgha lab` command ({holder or 'unknown'}) has "
                    f"held {path} for over {wait_s:.0f} s; wait for it or end it"
                )
            await asyncio.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
