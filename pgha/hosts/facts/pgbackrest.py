"""Facts for pgBackRest: the accounts that run it and their SSH identities, and what
`pgbackrest info` and its errors say. Read-only; the parsers are pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from pgha.hosts.host import Host

#: The host key pgha hands to peers for their known_hosts: every OpenSSH since 6.5 has one,
#: and OpenSSH clients prefer it.
HOST_KEY_PATH = "/etc/ssh/ssh_host_ed25519_key.pub"

#: `pgbackrest info` status codes that mean the stanza was never created.
STANZA_MISSING = frozenset({1, 3})  # missing stanza path, missing stanza data

#: pgBackRest error codes (src/build/error/error.yaml) that a retry cannot fix: the
#: repository's stanza belongs to another database (28 file-invalid "info files do not
#: match the database", 44/51/58 mismatches), archiving switched off or pointing elsewhere
#: (68, 87), bad options (31, 32, 37), files owned by the wrong user (88, 89), no usable
#: repository (103), access refused (105). Everything else (lock held, a host or the
#: database unreachable mid-failover, WAL not archived yet) may pass on a retry.
PERMANENT_CODES = frozenset({28, 31, 32, 37, 44, 51, 58, 68, 87, 88, 89, 103, 105})

_PUBLIC_KEY = re.compile(r"^(ssh-ed25519) ([A-Za-z0-9+/]+={0,2})(?:\s.*)?$")
_ERROR_CODE = re.compile(r"^ERROR: \[(\d{3})\]")
_CONSOLE = re.compile(r"^\s*(ERROR|WARN|HINT):")


class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True)


class Account(_Fact):
    """One user: its passwd entry and the name of its primary group."""

    name: str
    uid: int
    gid: int
    group: str
    home: str
    shell: str


class BackupInfo(_Fact):
    """One backup in the repository, as `pgbackrest info` describes it.

    ``size`` is the database size it copies, ``repo_size`` what it takes in the repository
    (compressed); ``start``/``stop`` are Unix times.
    """

    label: str
    type: str
    start: int
    stop: int
    size: int
    repo_size: int
    error: bool = False
    #: First and last WAL segment the set needs, its LSN range, and the set it builds on.
    archive_start: str = ""
    archive_stop: str = ""
    lsn_start: str = ""
    lsn_stop: str = ""
    prior: str | None = None
    #: The repository's id of the database it was taken from (``15-1``: version-id).
    archive_id: str = ""

    @property
    def duration_s(self) -> int:
        return self.stop - self.start


class StanzaInfo(_Fact):
    """What `pgbackrest info` says about one stanza."""

    name: str
    status_code: int
    status_message: str
    #: A backup (or expire) of this stanza holds the lock right now.
    backup_running: bool = False
    backups: list[BackupInfo] = []
    #: Oldest and newest archived segment of the current database.
    wal_min: str = ""
    wal_max: str = ""

    @property
    def exists(self) -> bool:
        return self.status_code not in STANZA_MISSING

    @property
    def latest(self) -> BackupInfo | None:
        good = [b for b in self.backups if not b.error]
        return good[-1] if good else None

    @property
    def latest_full(self) -> BackupInfo | None:
        full = [b for b in self.backups if b.type == "full" and not b.error]
        return full[-1] if full else None


def as_user(user: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run as ``user`` (pgha's commands run as root): runuser, no PAM session, no
    password; the user's own HOME, so ssh and pgBackRest find ``~/.ssh``."""
    return ["runuser", "-u", user, "--", *argv]


#: One round trip: the passwd entry, then the primary group's name; exit 2 when no user.
ACCOUNT_SCRIPT = 'getent passwd "$1" || exit 2; id -gn "$1"'


def parse_account(stdout: str) -> Account:
    """Parse :data:`ACCOUNT_SCRIPT`'s output: a `getent passwd` line, then a group. Pure.

    :raises ValueError: not that output.
    """
    lines = stdout.splitlines()
    fields = lines[0].strip().split(":") if lines else []
    if len(fields) != 7 or len(lines) < 2 or not lines[1].strip():
        raise ValueError(f"not a passwd entry and a group: {stdout[:200]!r}")
    return Account(
        name=fields[0],
        uid=int(fields[2]),
        gid=int(fields[3]),
        group=lines[1].strip(),
        home=fields[5],
        shell=fields[6],
    )


async def account(host: Host, user: str) -> Account | None:
    """The account ``user``, None when there is none. Read-only."""
    out = await host.run(
        ["sh", "-c", ACCOUNT_SCRIPT, "pgha-account", user], check=False, label="account", timeout=30
    )
    if out.exit_code == 2:  # getent: "key not found"
        return None
    if out.exit_code != 0:
        raise ValueError(f"looking up user {user} failed ({out.exit_code}): {out.stderr.strip()}")
    return parse_account(out.stdout)


def parse_public_key(text: str) -> str:
    """``ssh-ed25519 <base64>`` from a public key line, without its comment. Pure.

    Strict on purpose: the result goes into authorized_keys and known_hosts files, so an
    option, a second line or another key type must never slip through.

    :raises ValueError: not exactly one ed25519 public key.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    m = _PUBLIC_KEY.match(lines[0].strip()) if len(lines) == 1 else None
    if m is None:
        raise ValueError(f"not one ssh-ed25519 public key: {text[:120]!r}")
    return f"{m.group(1)} {m.group(2)}"


async def host_key(host: Host) -> str:
    """The host's ed25519 SSH host key (``ssh-ed25519 <base64>``). Read-only.

    Read over pgha's own SSH connection, whose host key was verified against pgha's
    known_hosts: trusting it is not trust-on-first-use.

    :raises CommandFailed: the host has no ed25519 host key.
    :raises ValueError: the file does not hold one ed25519 key.
    """
    out = await host.run(["cat", HOST_KEY_PATH], label="host-key", timeout=30)
    return parse_public_key(out.stdout)


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) else 0


def _backup(b: dict[str, object], archive_ids: dict[int, str]) -> BackupInfo:
    info, ts = _dict(b.get("info")), _dict(b.get("timestamp"))
    archive, lsn = _dict(b.get("archive")), _dict(b.get("lsn"))
    prior = b.get("prior")
    return BackupInfo(
        archive_start=str(archive.get("start") or ""),
        archive_stop=str(archive.get("stop") or ""),
        lsn_start=str(lsn.get("start") or ""),
        lsn_stop=str(lsn.get("stop") or ""),
        prior=str(prior) if prior else None,
        archive_id=archive_ids.get(_int(_dict(b.get("database")).get("id")), ""),
        label=str(b["label"]),
        type=str(b["type"]),
        start=_int(ts.get("start")),
        stop=_int(ts.get("stop")),
        size=_int(info.get("size")),
        repo_size=_int(_dict(info.get("repository")).get("size")),
        error=bool(b.get("error", False)),
    )


def parse_info(stdout: str, stanza: str) -> StanzaInfo:
    """Parse `pgbackrest --stanza=X --output=json info` (2.45). Pure.

    A stanza pgBackRest has never heard of still gets an entry (status 1, "missing stanza
    path"); an empty list is treated the same way.

    :raises ValueError: the output is not pgBackRest's JSON.
    """
    try:
        data = json.loads(stdout)
        entry = next((s for s in data if s.get("name") == stanza), None)
        if entry is None:
            return StanzaInfo(name=stanza, status_code=1, status_message="missing stanza path")
        status = entry["status"]
        lock = (status.get("lock") or {}).get("backup") or {}
        archives = [_dict(a) for a in entry.get("archive") or []]
        archive_ids = {_int(_dict(a.get("database")).get("id")): str(a.get("id")) for a in archives}
        current = archives[-1] if archives else {}
        return StanzaInfo(
            wal_min=str(current.get("min") or ""),
            wal_max=str(current.get("max") or ""),
            name=stanza,
            status_code=int(status["code"]),
            status_message=str(status.get("message", "")),
            backup_running=bool(lock.get("held", False)),
            backups=[_backup(b, archive_ids) for b in entry.get("backup") or []],
        )
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"unexpected pgbackrest info output ({err}): {stdout[:300]!r}") from None


def info_command(stanza: str) -> list[str]:
    return ["pgbackrest", f"--stanza={stanza}", "--output=json", "info"]


async def stanza_info(host: Host, user: str, stanza: str) -> StanzaInfo:
    """What the repository holds for ``stanza``, asked as ``user``. Read-only.

    :raises CommandFailed: pgBackRest failed (its ERROR lines are in the message).
    """
    out = await host.run(as_user(user, info_command(stanza)), label="pgbackrest info", timeout=120)
    return parse_info(out.stdout, stanza)


def console_lines(text: str) -> list[str]:
    """pgBackRest's ERROR, WARN and HINT lines (its words for what went wrong). Pure."""
    return [line.rstrip() for line in text.splitlines() if _CONSOLE.match(line)]


def error_code(exit_code: int, text: str) -> int:
    """pgBackRest's error code: from its ``ERROR: [NNN]`` line, else its exit status (they
    are the same for its own errors). Pure."""
    for line in text.splitlines():
        m = _ERROR_CODE.match(line.strip())
        if m:
            return int(m.group(1))
    return exit_code
