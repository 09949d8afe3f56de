"""Converge SSH trust between service users on two hosts (pgBackRest's repository user and
postgres): a key pair made on the host, authorized_keys entries limited to the peers'
addresses, and known_hosts entries from host keys pgha read itself. Never trust on first use.

pgha owns one block per cluster in each file, between BEGIN/END marker lines, and never
touches a line outside it: an operator's own keys stay.
"""

from __future__ import annotations

import posixpath
import re

from pydantic import BaseModel, ConfigDict

from pgha.errors import CommandFailed, HostError
from pgha.hosts.facts.files import file_state
from pgha.hosts.facts.pgbackrest import Account, as_user, parse_public_key
from pgha.hosts.host import Host, render_command
from pgha.hosts.ops.files import ensure_directory, ensure_file
from pgha.hosts.result import Outcome, combine

KEY_NAME = "id_ed25519"
_COMMENT = re.compile(r"^[A-Za-z0-9@:._-]{1,100}$")


class KeyUnusable(HostError):
    """The user's existing private key cannot be used (encrypted, damaged, another type).
    Permanent: pgha never replaces a key it did not make."""


class SshIdentity(BaseModel):
    """Who a service user is, as its peers need to know it. No secret: public keys only.

    ``host_key`` is the host's ed25519 host key, read by pgha over its verified connection.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    address: str
    user: str
    public_key: str
    host_key: str


def key_path(acct: Account) -> str:
    return posixpath.join(acct.home, ".ssh", KEY_NAME)


async def ensure_keypair(host: Host, acct: Account, comment: str) -> tuple[Outcome, str]:
    """An ed25519 key pair in ``~user/.ssh``, generated on the host (the private key never
    leaves it). Idempotent: an existing key is kept, only its mode and owner are fixed.

    :param comment: the key's comment, e.g. ``pgha:lab:backup1:postgres``.
    :returns: what was done, and the public key (``ssh-ed25519 <base64>``), derived from
        the private key itself, so a stale ``.pub`` file cannot mislead.
    :raises KeyUnusable: the existing key is encrypted, damaged or not ed25519.
    """
    if not _COMMENT.match(comment):
        raise ValueError(f"not a key comment pgha writes: {comment!r}")
    ssh_dir = posixpath.join(acct.home, ".ssh")
    key = key_path(acct)
    done = [await ensure_directory(host, ssh_dir, mode=0o700, owner=acct.name, group=acct.group)]
    state = await file_state(host, key)
    if not state.exists:
        cmd = as_user(
            acct.name, ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key]
        )
        await host.run(cmd, label="ssh-keygen", timeout=60)
        done.append(Outcome.made(f"generated an ed25519 key pair {key}", [render_command(cmd)]))
    else:
        fix: list[list[str]] = []
        if state.owner != acct.name:
            fix.append(["chown", f"{acct.name}:{acct.group}", key])
        if state.mode is not None and state.mode & 0o077:
            fix.append(["chmod", "0600", key])  # ssh refuses a private key others can read
        if fix:
            await host.run_all(fix)
            done.append(
                Outcome.made(f"{key}: set owner and mode 0600", [render_command(c) for c in fix])
            )
        else:
            done.append(Outcome.unchanged(f"{acct.name} already has the key pair {key}"))
    derive = as_user(acct.name, ["ssh-keygen", "-y", "-f", key])
    try:
        out = await host.run(derive, label="ssh-keygen -y", timeout=60)
        public = parse_public_key(out.stdout)
    except (CommandFailed, ValueError) as err:
        raise KeyUnusable(
            host.name,
            f"host {host.name} ({host.address}): the key {key} of {acct.name} cannot be used "
            f"for pgBackRest ({err}); it must be an unencrypted ed25519 key. Move it aside "
            "and run the step again (pgha then makes a new one).",
        ) from None
    return combine(*done), public


def managed_text(existing: str, cluster: str, entries: list[str]) -> str:
    """``existing`` with pgha's block for ``cluster`` replaced by ``entries`` (appended
    when there was none; removed when ``entries`` is empty). Pure; everything else kept."""
    begin = f"# BEGIN pgha cluster {cluster}: managed by pgha, changes are overwritten"
    end = f"# END pgha cluster {cluster}"
    kept: list[str] = []
    inside = False
    for line in existing.splitlines():
        if line.startswith(f"# BEGIN pgha cluster {cluster}:"):
            inside = True
        elif inside and line == end:
            inside = False
        elif not inside:
            kept.append(line)
    block = [begin, *entries, end] if entries else []
    lines = kept + block
    return "\n".join(lines) + "\n" if lines else ""


async def _read(host: Host, path: str) -> str:
    state = await file_state(host, path)
    if not state.exists:
        return ""
    out = await host.run(["cat", "--", path], label="read", timeout=30)
    return out.stdout


async def ensure_managed_lines(
    host: Host, acct: Account, path: str, cluster: str, entries: list[str], mode: int
) -> Outcome:
    """pgha's block in ``path`` (owned by the user) holds exactly ``entries``. Idempotent."""
    existing = await _read(host, path)
    wanted = managed_text(existing, cluster, entries)
    return await ensure_file(host, path, wanted, mode=mode, owner=acct.name, group=acct.group)


def authorized_entry(peer: SshIdentity, from_address: str, cluster: str) -> str:
    """An authorized_keys line for ``peer``'s key: usable only from its address, and with
    ``restrict`` (no forwarding, no pty): pgBackRest needs a plain command channel only."""
    key = parse_public_key(peer.public_key)
    return f'from="{from_address}",restrict {key} pgha:{cluster}:{peer.host}:{peer.user}'


def known_host_entry(peer: SshIdentity, address: str, port: int = 22) -> str:
    name = address if port == 22 else f"[{address}]:{port}"
    return f"{name} {parse_public_key(peer.host_key)}"


def shared_connection_entries(address: str, port: int = 22) -> list[str]:
    """An ssh_config ``Host`` block that makes the user's logins to a peer share one SSH
    connection (OpenSSH's ControlMaster).

    Why: every ``restore_command`` (pgBackRest archive-get) is one SSH login to the
    repository host, about 0.25 s of key exchange of its 0.35 s here; a promotion calls it
    three or four times (the last segment, the next timeline's history) and cannot be
    interrupted by one, so a switchover's write gap lost about 1.5 s to it. Shared, a call
    takes about 0.13 s. ControlPersist keeps the connection a while after the last use;
    ServerAlive* gives up on a peer that stopped answering after about 15 s (a new login
    then starts a new master; without sharing, a login to a dead host waits for TCP's
    connect timeout), tolerant enough not to cut a busy repository host's channels;
    OpenSSH unlinks a stale socket left by a reboot. pgBackRest opens a few channels at a
    time (process-max), well under sshd's default MaxSessions 10 per connection. Commands
    sent over the shared connection are not checked again against authorized_keys'
    ``from=``: the socket lives in the user's own ~/.ssh (0700), so only that user, who
    already holds the authenticated connection, can use it.
    """
    entries = [f"Host {address}"]
    if port != 22:
        entries.append(f"    Port {port}")
    return [
        *entries,
        "    ControlMaster auto",
        "    ControlPath ~/.ssh/pgha-mux-%C",
        "    ControlPersist 300",
        "    ServerAliveInterval 5",
        "    ServerAliveCountMax 3",
    ]


async def ensure_trust(
    host: Host,
    acct: Account,
    cluster: str,
    peers: list[tuple[SshIdentity, str, int]],
) -> Outcome:
    """``acct`` accepts logins from each peer's user (only from its address), knows each
    peer's host key, and shares one SSH connection per peer (``~/.ssh/config``, see
    :func:`shared_connection_entries`). Idempotent; entries of peers no longer given are
    removed.

    :param peers: (identity, address, SSH port) of each peer; the address comes from the
        cluster spec, not from the peer's own report.
    """
    ssh_dir = posixpath.join(acct.home, ".ssh")
    dirs = await ensure_directory(host, ssh_dir, mode=0o700, owner=acct.name, group=acct.group)
    authorized = [authorized_entry(p, addr, cluster) for p, addr, _ in peers]
    known = [known_host_entry(p, addr, port) for p, addr, port in peers]
    auth = await ensure_managed_lines(
        host, acct, posixpath.join(ssh_dir, "authorized_keys"), cluster, authorized, 0o600
    )
    hosts = await ensure_managed_lines(
        host, acct, posixpath.join(ssh_dir, "known_hosts"), cluster, known, 0o644
    )
    sharing = [line for _, addr, port in peers for line in shared_connection_entries(addr, port)]
    config = await ensure_managed_lines(
        host, acct, posixpath.join(ssh_dir, "config"), cluster, sharing, 0o600
    )
    return combine(dirs, auth, hosts, config)
