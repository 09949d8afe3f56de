"""Converge pgBackRest: the repository user, config files and directories on the repository
and database hosts, the stanza, and the first full backup. Commands run as the user that
owns the repository (or postgres), never as root, so every file pgBackRest makes is theirs.

Restarts nothing: pgBackRest reads its config at every run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from pgha.errors import CommandFailed, HostError
from pgha.hosts.facts import pgbackrest as facts
from pgha.hosts.facts.files import file_state
from pgha.hosts.facts.haproxy import ProgramMissing
from pgha.hosts.facts.pgbackrest import Account, BackupInfo, as_user
from pgha.hosts.host import Host, render_command
from pgha.hosts.ops.files import ensure_directory, ensure_file
from pgha.hosts.result import Outcome, combine
from pgha.render.files import RenderedFile

LOG_PATH = "/var/log/pgbackrest"
SPOOL_PATH = "/var/spool/pgbackrest"
#: pgBackRest reads this one first and /etc/pgbackrest.conf only when it is missing.
SHADOWING_CONFIG = "/etc/pgbackrest/pgbackrest.conf"
#: `check` waits up to archive-timeout (60 s by default) for the WAL segment it switched to.
CHECK_TIMEOUT_S = 300
STANZA_CREATE_TIMEOUT_S = 300
#: How often a backup that another process runs is looked at while waiting for it.
POLL_S = 5.0
LOCK_ACQUIRE = 50


#: Errors saying the repository's stanza belongs to another database: file-invalid,
#: archive-mismatch, backup-mismatch, db-mismatch.
OTHER_DATABASE = frozenset({28, 44, 51, 58})
#: Errors saying PostgreSQL does not archive through pgBackRest.
ARCHIVING_OFF = frozenset({68, 82, 87})


def hint_for(code: int, stanza: str) -> str:
    """What an operator should do about pgBackRest error ``code``. Pure."""
    if code in OTHER_DATABASE:
        return (
            f"The repository's stanza {stanza} belongs to another database (was the cluster "
            "re-created under the same name?). pgha never deletes backups: keep them "
            f"elsewhere and remove the stanza (`pgbackrest --stanza={stanza} stanza-delete`), "
            "or set backup.stanza to a new name; then run the step again."
        )
    if code in ARCHIVING_OFF:
        return (
            "PostgreSQL does not archive WAL to this repository: check archive_mode and "
            "archive_command in Patroni's settings, /etc/pgbackrest.conf and the SSH trust "
            "on the database hosts (their postgres must reach this host without a prompt)."
        )
    return ""


class PgbackrestFailed(HostError):
    """A pgBackRest command failed; the message holds its ERROR/WARN/HINT lines and what to do.

    ``permanent`` when its error code is one a retry cannot fix
    (:data:`pgha.hosts.facts.pgbackrest.PERMANENT_CODES`).
    """

    def __init__(self, host: Host, what: str, err: CommandFailed, stanza: str) -> None:
        self.code = facts.error_code(err.exit_code, err.stderr_tail)
        self.permanent = self.code in facts.PERMANENT_CODES
        self.lines = facts.console_lines(err.stderr_tail) or err.stderr_tail.splitlines()
        said = "\n".join(f"  {line}" for line in self.lines) or "  (no message)"
        hint = hint_for(self.code, stanza)
        super().__init__(
            host.name,
            f"host {host.name} ({host.address}): {what} failed with pgBackRest error "
            f"[{self.code:03d}]:\n{said}" + (f"\n{hint}" if hint else ""),
        )


async def ensure_user(host: Host, user: str, home: str) -> tuple[Outcome, Account]:
    """The account ``user`` exists; a missing one other than postgres is created as a system
    user with home ``home`` (mode 0750) and a shell (SSH runs pgBackRest's remote commands
    through it). Idempotent.

    :raises ProgramMissing: postgres is missing: it comes with the packages (postgresql-common).
    """
    acct = await facts.account(host, user)
    if acct is not None:
        return Outcome.unchanged(f"user {user} exists"), acct
    if user == "postgres":
        raise ProgramMissing(
            host.name,
            f"host {host.name} ({host.address}): there is no postgres user; it comes with the "
            "pgbackrest package (via postgresql-common): run the packages step first",
        )
    cmd = [
        "useradd",
        "--system",
        "--user-group",
        "--home-dir",
        home,
        "--shell",
        "/bin/bash",
        "--comment",
        "pgBackRest repository (pgha)",
        user,
    ]
    await host.run(cmd, label="useradd", timeout=60)
    acct = await facts.account(host, user)
    if acct is None:
        raise ValueError(f"host {host.name}: useradd {user} succeeded but the user is missing")
    made = await ensure_directory(host, home, mode=0o750, owner=acct.name, group=acct.group)
    return Outcome.made(
        f"created system user {user} (home {home})", [render_command(cmd), *made.commands]
    ), acct


async def shadowing_config(host: Host) -> str | None:
    """A warning when /etc/pgbackrest/pgbackrest.conf exists: pgBackRest would read it instead
    of the file pgha writes. pgha does not remove a file it did not write."""
    state = await file_state(host, SHADOWING_CONFIG)
    if not state.exists:
        return None
    return (
        f"{SHADOWING_CONFIG} exists on {host.name}: pgBackRest reads it instead of "
        "/etc/pgbackrest.conf, which pgha manages; move it aside"
    )


async def ensure_config(
    host: Host, config: RenderedFile, acct: Account, dirs: dict[str, int]
) -> Outcome:
    """pgBackRest's config file as rendered (content, mode, owner) and its directories owned
    by ``acct`` with the given modes. Idempotent.

    :param dirs: path -> mode, e.g. the repository (0750) and the log directory.
    """
    done = [
        await ensure_directory(host, path, mode=mode, owner=acct.name, group=acct.group)
        for path, mode in dirs.items()
    ]
    done.append(
        await ensure_file(
            host,
            config.path,
            config.content,
            mode=config.mode,
            owner=config.owner,
            group=config.group,
        )
    )
    return combine(*done)


async def _pgbackrest(host: Host, acct: Account, stanza: str, command: str, timeout: float) -> None:
    argv = ["pgbackrest", f"--stanza={stanza}", command]
    try:
        await host.run(as_user(acct.name, argv), label=f"pgbackrest {command}", timeout=timeout)
    except CommandFailed as err:
        raise PgbackrestFailed(host, f"pgbackrest {command} of {stanza}", err, stanza) from None


async def ensure_stanza(host: Host, acct: Account, stanza: str) -> Outcome:
    """The stanza exists in the repository: `stanza-create` only when `info` says it was never
    created. Needs the cluster's primary running. Idempotent.

    :raises PgbackrestFailed: info or stanza-create failed.
    """
    info = await stanza_info(host, acct, stanza)
    if info.exists:
        return Outcome.unchanged(f"stanza {stanza} exists ({info.status_message})")
    await _pgbackrest(host, acct, stanza, "stanza-create", STANZA_CREATE_TIMEOUT_S)
    argv = ["pgbackrest", f"--stanza={stanza}", "stanza-create"]
    return Outcome.made(f"created stanza {stanza}", [render_command(as_user(acct.name, argv))])


async def stanza_info(host: Host, acct: Account, stanza: str) -> facts.StanzaInfo:
    try:
        return await facts.stanza_info(host, acct.name, stanza)
    except CommandFailed as err:
        raise PgbackrestFailed(host, f"pgbackrest info of {stanza}", err, stanza) from None


async def check(host: Host, acct: Account, stanza: str) -> float:
    """`pgbackrest check`: the repository is usable and the primary's WAL reaches it (it
    switches to a new WAL segment and waits for it to be archived). Changes nothing but that
    switch.

    :returns: seconds it took.
    :raises PgbackrestFailed: the check failed; its lines say why.
    """
    started = time.monotonic()
    await _pgbackrest(host, acct, stanza, "check", CHECK_TIMEOUT_S)
    return time.monotonic() - started


async def ensure_full_backup(
    host: Host,
    acct: Account,
    stanza: str,
    *,
    within: float,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[Outcome, BackupInfo]:
    """At least one full backup exists: takes one (`--type=full`) when `info` shows none.
    Idempotent and safe to re-run mid-backup: a backup that is already running (a previous
    attempt whose worker died) is waited for, not started twice (see :func:`take_backup`).

    :param within: bound on the whole wait, backup included (seconds).
    :param progress: told what is going on, e.g. to heartbeat.
    :returns: what was done, and the latest backup.
    :raises PgbackrestFailed: the backup failed.
    :raises TimeoutError: no full backup within ``within``.
    """
    info = await stanza_info(host, acct, stanza)
    if info.latest_full is not None and info.latest is not None:
        why = f"stanza {stanza} has a full backup already; the latest is {info.latest.label}"
        return Outcome.unchanged(why), info.latest
    known = {b.label for b in info.backups}
    new, ran = await take_backup(
        host, acct, stanza, "full", known=known, within=within, progress=progress, info=info
    )
    if not ran:
        return Outcome.unchanged(f"full backup {new.label}, started elsewhere, finished"), new
    argv = ["pgbackrest", f"--stanza={stanza}", "--type=full", "backup"]
    return Outcome.made(
        f"took full backup {new.label}", [render_command(as_user(acct.name, argv))]
    ), new


async def take_backup(
    host: Host,
    acct: Account,
    stanza: str,
    backup_type: str,
    *,
    known: set[str],
    within: float,
    progress: Callable[[str], None] = lambda _: None,
    info: facts.StanzaInfo | None = None,
) -> tuple[BackupInfo, bool]:
    """One new backup of ``backup_type`` (full, diff, incr). Safe to re-run after a lost
    worker: a set that is not in ``known`` (the labels before the first attempt) is the
    one an earlier attempt took, and a backup still running is waited for, not doubled.
    pgBackRest turns a diff or incr without a prior full into a full; the new set's type
    says what was taken.

    :param info: the stanza as just read (saves the first `info`).
    :returns: the new set, and whether this call ran the backup command.
    :raises PgbackrestFailed: the backup failed (its ERROR lines say why).
    :raises TimeoutError: no new set within ``within`` seconds.
    """
    deadline = time.monotonic() + within
    ran = False
    while True:
        info = info if info is not None else await stanza_info(host, acct, stanza)
        new = [b for b in info.backups if b.label not in known and not b.error]
        if new:
            return new[-1], ran
        if ran:
            raise ValueError(
                f"host {host.name}: pgbackrest backup of {stanza} succeeded, but info shows no "
                f"new set (status: {info.status_message})"
            )
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"host {host.name}: no new backup of {stanza} after {within:g} s")
        if info.backup_running:
            progress("waiting for the backup that is already running")
            await asyncio.sleep(min(POLL_S, left))
            info = None
            continue
        info = None
        argv = ["pgbackrest", f"--stanza={stanza}", f"--type={backup_type}", "backup"]
        progress(f"taking a {backup_type} backup")
        try:
            await host.run(as_user(acct.name, argv), label="pgbackrest backup", timeout=left)
        except CommandFailed as err:
            failed = PgbackrestFailed(host, f"{backup_type} backup of {stanza}", err, stanza)
            if failed.code != LOCK_ACQUIRE:
                raise failed from None
            continue  # another backup started meanwhile: wait for it on the next round
        ran = True


async def expire(host: Host, acct: Account, stanza: str) -> list[str]:
    """`pgbackrest expire` under the retention of the repository's config.

    :returns: the labels it removed.
    :raises PgbackrestFailed: expire failed.
    """
    before = {b.label for b in (await stanza_info(host, acct, stanza)).backups}
    await _pgbackrest(host, acct, stanza, "expire", STANZA_CREATE_TIMEOUT_S)
    after = {b.label for b in (await stanza_info(host, acct, stanza)).backups}
    return sorted(before - after)
