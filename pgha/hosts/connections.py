"""The pool of SSH connections, one per host and event loop, and what each one carries.

Opens, verifies and closes connections; runs no commands (that is pgha.hosts.host).
"""

from __future__ import annotations

import asyncio
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from pgha.errors import (
    HostKeyMismatch,
    HostKeyUnknown,
    HostLoginRefused,
    HostUnreachable,
    SshKeyUnusable,
)
from pgha.models import HostTarget

#: OpenSSH's default MaxSessions is 10 channels per connection; stay under it.
MAX_CHANNELS_PER_CONNECTION = 8


@dataclass
class Link:
    """What pgha keeps for one pooled connection, and forgets with it.

    ``sudo_nopasswd``: None until first asked, then whether sudo runs without a password.
    ``sudo_accepted``: sha256 of the sudo passwords sudo has accepted on this host.
    """

    channels: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_CHANNELS_PER_CONNECTION)
    )
    sudo_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sudo_nopasswd: bool | None = None
    sudo_accepted: set[str] = field(default_factory=set)


_PoolKey = tuple[int, str, int, str, str | None, str | None]
_pool: dict[_PoolKey, asyncssh.SSHClientConnection] = {}
# Keyed by id(conn): entries leave together with their connection (see _forget).
_links: dict[int, Link] = {}
_locks: dict[_PoolKey, asyncio.Lock] = {}


def link(conn: asyncssh.SSHClientConnection) -> Link:
    """The state kept for ``conn``, made on first use."""
    state = _links.get(id(conn))
    if state is None:
        state = _links[id(conn)] = Link()
    return state


def _forget(conn: asyncssh.SSHClientConnection) -> None:
    _links.pop(id(conn), None)


def _expand(path: str | None) -> str | None:
    return os.path.expanduser(path) if path else None


def _key(target: HostTarget) -> _PoolKey:
    loop = id(asyncio.get_running_loop())
    return (loop, target.address, target.port, target.user, target.key_file, target.known_hosts)


def drop(target: HostTarget, conn: asyncssh.SSHClientConnection) -> None:
    """Close ``conn`` and take it out of the pool: only when the connection itself broke.

    Every command running on it dies, so never call this for a failure of one channel.
    A newer connection pooled for the same target in the meantime stays.
    """
    try:
        key = _key(target)
    except RuntimeError:  # no running loop: nothing of ours can use it any more
        key = None
    if key is not None and _pool.get(key) is conn:
        del _pool[key]
    _forget(conn)
    conn.close()


def known_hosts_name(target: HostTarget) -> str:
    """How known_hosts names the host: ``addr``, or ``'[addr]:port'`` off port 22."""
    if target.port == 22:
        return target.address
    return shlex.quote(f"[{target.address}]:{target.port}")


def _known_key_exists(target: HostTarget, known_hosts: str) -> bool:
    try:
        db = asyncssh.read_known_hosts(known_hosts)
    except (OSError, ValueError):
        return False
    keys = db.match(target.address, target.address, target.port)
    return bool(keys[0] or keys[1])


def _unusable_key(target: HostTarget, problem: str) -> SshKeyUnusable:
    what = (
        f"the SSH key file {target.key_file} (ssh.key_file in the cluster spec)"
        if target.key_file
        else "a default SSH key (~/.ssh/id_*; ssh.key_file is not set)"
    )
    return SshKeyUnusable(
        target.name,
        f"host {target.label}: {what} {problem}. Point ssh.key_file at the private key "
        f"whose public key is in {target.user}'s authorized_keys on the host.",
    )


def check_key_file(target: HostTarget) -> None:
    """Make sure the client key can be loaded, before any connection is tried.

    A missing, unreadable or undecodable key is a configuration fault that no retry fixes;
    asyncssh would report it like a network error.

    :raises SshKeyUnusable: naming the host and ``ssh.key_file``.
    """
    path = _expand(target.key_file)
    if path is None:  # the default keys and the agent: asyncssh looks for them itself
        return
    try:
        asyncssh.read_private_key(path)
    except FileNotFoundError:
        raise _unusable_key(target, "does not exist") from None
    except IsADirectoryError:
        raise _unusable_key(target, "is a directory, not a private key") from None
    except OSError as err:
        raise _unusable_key(target, f"cannot be read: {err.strerror or err}") from None
    except asyncssh.KeyImportError as err:
        if "passphrase" in str(err).lower():
            problem = (
                "is protected by a passphrase, which pgha cannot enter; use a key "
                "without a passphrase"
            )
        else:
            problem = f"is not a private key pgha can read ({err})"
        raise _unusable_key(target, problem) from None


async def _open(target: HostTarget) -> asyncssh.SSHClientConnection:
    known_hosts = _expand(target.known_hosts)
    if known_hosts is None or not Path(known_hosts).is_file():
        raise HostKeyUnknown(
            target.name,
            f"host {target.label}: known_hosts file {known_hosts} does not exist; pgha "
            "verifies every host key. Add the host's key (check its fingerprint first): "
            f"`ssh-keyscan -p {target.port} {target.address} >> {target.known_hosts}`",
        )
    check_key_file(target)
    key_file = _expand(target.key_file)
    try:
        return await asyncio.wait_for(
            asyncssh.connect(
                target.address,
                port=target.port,
                username=target.user,
                # () = the default keys (~/.ssh/id_*) and the agent; None would turn
                # public key authentication off altogether.
                client_keys=[key_file] if key_file else (),
                known_hosts=known_hosts,
                agent_path=None if key_file else (),
                keepalive_interval=15,
                keepalive_count_max=3,
                login_timeout=target.connect_timeout,
                config=(),
            ),
            target.connect_timeout + 5,
        )
    except asyncssh.HostKeyNotVerifiable as err:
        if _known_key_exists(target, known_hosts):
            raise HostKeyMismatch(
                target.name,
                f"host {target.label}: the SSH host key does not match the one in "
                f"{target.known_hosts}. If the host was rebuilt, remove the old entry "
                f"(`ssh-keygen -R {known_hosts_name(target)} -f {target.known_hosts}`) and "
                "add the new "
                "key after checking its fingerprint; otherwise someone may be intercepting "
                f"the connection. ({err.reason})",
            ) from None
        raise HostKeyUnknown(
            target.name,
            f"host {target.label}: no key for {target.address} in {target.known_hosts}; add "
            "it after checking its fingerprint: "
            f"`ssh-keyscan -p {target.port} {target.address} >> {target.known_hosts}`",
        ) from None
    except asyncssh.PermissionDenied:
        raise HostLoginRefused(
            target.name,
            f"host {target.label}: SSH login as {target.user} with key {target.key_file} "
            "was refused; install the public key in that user's authorized_keys",
        ) from None
    except asyncssh.KeyImportError as err:
        # Default keys (no key_file) are loaded only here; a key_file was checked above,
        # but may have changed since.
        raise _unusable_key(target, f"is not a private key pgha can read ({err})") from None
    except (TimeoutError, OSError, asyncssh.Error) as err:
        reason = str(err) or type(err).__name__
        raise HostUnreachable(
            target.name,
            f"host {target.label}: cannot connect over SSH to port {target.port}: {reason}",
        ) from None


async def connection(target: HostTarget) -> asyncssh.SSHClientConnection:
    """The pooled connection to ``target`` in this event loop, opened when there is none.

    :raises HostKeyMismatch, HostKeyUnknown, HostLoginRefused, SshKeyUnusable: permanent.
    :raises HostUnreachable: cannot connect (transient).
    """
    key = _key(target)
    lock = _locks.setdefault(key, asyncio.Lock())
    async with lock:
        conn = _pool.get(key)
        if conn is None or conn.is_closed():
            if conn is not None:
                _forget(conn)
            conn = await _open(target)
            _pool[key] = conn
        return conn


async def close_all() -> None:
    """Close every pooled connection of the running loop (worker shutdown, tests)."""
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _pool if k[0] == loop]:
        conn = _pool.pop(key)
        _forget(conn)
        conn.close()
        await conn.wait_closed()
