"""Restore verification on the verify host: restore a set into scratch space, run the copy
isolated until it is promoted at the recovery target, prove it, and remove it.

Everything runs as the postgres OS user (the repository's owner on the repository host),
inside :class:`ScratchLayout.root`; nothing outside it is written, and teardown removes it.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pgha.errors import CommandFailed, HostError
from pgha.hosts.facts.pgbackrest import as_user
from pgha.hosts.host import Host
from pgha.hosts.ops.pgbackrest import PgbackrestFailed
from pgha.render.restore_verify import ScratchLayout

USER = "postgres"
#: How often recovery is looked at, and how much of the server log a failure quotes.
POLL_S = 1.0
LOG_LINES = 12
DEAD_POLLS = 3
#: Connection attempts refused during recovery log this; it says nothing about recovery.
_STARTING_UP = "the database system is starting up"
_RESTORED = re.compile(r'restored log file "([0-9A-F]{24})" from archive')
_SERVER_PROBLEM = re.compile(r"\b(FATAL|PANIC|ERROR):\s+(.*)$")


class RecoveryFailed(HostError):
    """The restored copy stopped before it was promoted: the log lines say why."""

    def __init__(self, host: Host, reason: str, log: list[str]) -> None:
        self.reason = reason
        self.log = log
        super().__init__(
            host.name, f"host {host.name}: the restored copy did not recover: {reason}"
        )


class NoRoom(HostError):
    """The scratch filesystem cannot hold the restored copy."""


def _pg(layout: ScratchLayout, program: str, *args: str) -> list[str]:
    # From /: runuser keeps root's working directory, which postgres may not enter.
    return as_user(USER, ["env", "-C", "/", f"{layout.bin_dir}/{program}", *args])


def _pgbackrest(layout: ScratchLayout, stanza: str, *args: str) -> list[str]:
    return as_user(
        USER, ["pgbackrest", f"--config={layout.pgbackrest_conf}", f"--stanza={stanza}", *args]
    )


def _check_root(layout: ScratchLayout) -> None:
    # rm -rf below: never on anything but a scratch directory of some depth.
    if not layout.root.startswith("/") or layout.root.count("/") < 3 or ".." in layout.root:
        raise ValueError(f"refusing to use {layout.root!r} as a scratch directory")


async def stop_instance(host: Host, layout: ScratchLayout) -> bool:
    """Stop a scratch instance left running (immediate: its data is thrown away).

    :returns: whether one was running.
    """
    probe = await host.run(
        _pg(layout, "pg_ctl", "-D", layout.data, "status"), check=False, label="pg_ctl status"
    )
    if probe.exit_code != 0:  # 3: not running; 4: no data directory
        return False
    await host.run(
        _pg(layout, "pg_ctl", "-D", layout.data, "-m", "immediate", "-w", "-t", "60", "stop"),
        label="pg_ctl stop",
        timeout=90,
    )
    return True


async def remove_scratch(host: Host, layout: ScratchLayout) -> bool:
    """Stop the scratch instance if it runs and delete the scratch directory. Idempotent.

    :returns: whether there was anything to remove.
    """
    _check_root(layout)
    stopped = await stop_instance(host, layout)
    root = shlex.quote(layout.root)
    out = await host.run(
        f"test -e {root} && rm -rf -- {root} && echo removed",
        check=False,
        label="rm scratch",
        timeout=1800,
    )
    return stopped or "removed" in out.stdout


async def prepare_scratch(host: Host, layout: ScratchLayout, pgbackrest_conf: str) -> None:
    """A fresh, empty scratch directory owned by postgres (0700), with pgBackRest's config."""
    await remove_scratch(host, layout)
    dirs = [layout.root, layout.data, layout.run, layout.log, f"{layout.root}/spool",
            f"{layout.root}/lock"]  # fmt: skip
    quoted = " ".join(shlex.quote(d) for d in dirs)
    await host.run(
        f"install -d -m 0700 -o {USER} -g {USER} {quoted}", label="mkdir scratch", timeout=60
    )
    await write_file(host, layout.pgbackrest_conf, pgbackrest_conf)


async def write_file(host: Host, path: str, content: str) -> None:
    """A postgres-owned 0600 file (content on stdin, never on the command line)."""
    q = shlex.quote(path)
    await host.run(
        f"cat > {q} && chown {USER}:{USER} {q} && chmod 0600 {q}",
        input=content,
        label="write",
        timeout=60,
    )


async def free_bytes(host: Host, path: str) -> int:
    out = await host.run(["df", "--output=avail", "-B1", path], label="df", timeout=30)
    return int(out.stdout.split()[-1])


def _on_repository(user: str, stanza: str, *args: str) -> list[str]:
    """pgBackRest on the repository host, with that host's own config."""
    return as_user(user, ["env", "-C", "/", "pgbackrest", f"--stanza={stanza}", *args])


async def repository_verify(host: Host, user: str, stanza: str) -> str:
    """On the repository host, as its owner ``user``: `pgbackrest verify` of the whole
    repository (2.45 cannot limit it to one set), its text report and per-range WAL lines.
    It exits 0 even when it finds damage: the caller reads the output (see
    :mod:`pgha.checks.wal_chain`).

    :raises CommandFailed: verify itself could not run.
    """
    argv = _on_repository(
        user, stanza, "--output=text", "--log-level-console=detail", "--verbose", "verify"
    )
    out = await host.run(argv, label="pgbackrest verify", timeout=6 * 3600)
    return out.stdout + "\n" + out.stderr


async def repository_file(host: Host, user: str, stanza: str, path: str) -> str | None:
    """On the repository host: a file of the repository (e.g. a timeline history file),
    None when it is missing."""
    out = await host.run(
        _on_repository(user, stanza, "--log-level-console=error", "repo-get", path),
        check=False,
        label="pgbackrest repo-get",
        timeout=120,
    )
    return out.stdout if out.exit_code == 0 else None


async def restore(
    host: Host, layout: ScratchLayout, stanza: str, label: str, timeout: float
) -> None:
    """`pgbackrest restore` of set ``label`` into the scratch data directory, writing no
    recovery settings (pgha writes its own).

    :raises PgbackrestFailed: with pgBackRest's ERROR lines (permanent for its errors that
        a retry cannot fix, e.g. a damaged file).
    """
    argv = _pgbackrest(layout, stanza, f"--set={label}", "--type=none", "restore")
    try:
        await host.run(argv, label="pgbackrest restore", timeout=timeout)
    except CommandFailed as err:
        raise PgbackrestFailed(host, f"restore of set {label}", err, stanza) from None


async def configure_recovery(
    host: Host, layout: ScratchLayout, postgres_conf: str, hba_conf: str
) -> None:
    """pgha's configuration for the copy; the restored postgresql.auto.conf is kept aside
    (it could re-enable archiving or replication), standby.signal replaced by
    recovery.signal: archive recovery to the target, then promotion."""
    await write_file(host, layout.postgres_conf, postgres_conf)
    await write_file(host, layout.hba_conf, hba_conf)
    await write_file(host, layout.ident_conf, "")
    d = shlex.quote(layout.data)
    await host.run(
        f"cd {d} && {{ test ! -e postgresql.auto.conf || "
        "mv postgresql.auto.conf postgresql.auto.conf.restored; } && "
        "rm -f standby.signal postmaster.pid && "
        "echo '# replaced by pgha restore verification' > postgresql.auto.conf && "
        f"touch recovery.signal && chown {USER}:{USER} postgresql.auto.conf recovery.signal && "
        "chmod 0600 postgresql.auto.conf recovery.signal",
        label="recovery settings",
        timeout=60,
    )


async def start(host: Host, layout: ScratchLayout) -> None:
    """Start the copy in the background (pg_ctl without waiting: recovery may take hours)."""
    await host.run(
        _pg(layout, "pg_ctl", "-D", layout.data, "-l", layout.server_log, "-W",
            "-o", f"-c config_file={layout.postgres_conf}", "start"),
        label="pg_ctl start",
        timeout=120,
    )  # fmt: skip


@dataclass(frozen=True)
class Recovered:
    seconds: float
    #: WAL segments restore_command fetched from the repository.
    segments: int
    last_segment: str


#: One round trip per poll: is the postmaster alive, does it accept connections, how far
#: did recovery get, and (once it accepts) is it still in recovery.
_POLL = r"""
{bin}/pg_ctl -D {data} status >/dev/null 2>&1; alive=$?
{bin}/pg_isready -q -h {run} -p {port}; ready=$?
echo "alive=$alive"; echo "ready=$ready"
if [ "$ready" = 0 ]; then
  {bin}/psql -X -A -t -h {run} -p {port} -d postgres -c 'SELECT pg_catalog.pg_is_in_recovery()' \
    | sed 's/^/recovery=/'
fi
echo "restored=$(grep -c 'restored log file' {log} 2>/dev/null)"
grep -o 'restored log file "[0-9A-F]*"' {log} 2>/dev/null | tail -n 1 | sed 's/^/last=/'
"""


def poll_facts(stdout: str) -> dict[str, str]:
    """The ``key=value`` lines of :data:`_POLL`'s output (one fact per line). Pure."""
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


async def wait_promoted(
    host: Host,
    layout: ScratchLayout,
    *,
    within: float,
    progress: Callable[[str], None] = lambda _: None,
) -> Recovered:
    """Wait until the copy has replayed to its target and been promoted.

    :raises RecoveryFailed: the postmaster stopped first (target not reached, missing or
        damaged WAL, a time before the set's end...): the server log's reason.
    :raises TimeoutError: not promoted within ``within`` seconds.
    """
    script = _POLL.format(
        bin=layout.bin_dir, data=shlex.quote(layout.data), run=shlex.quote(layout.run),
        port=layout.port, log=shlex.quote(layout.server_log),
    )  # fmt: skip
    started = time.monotonic()
    dead = 0
    while True:
        out = await host.run(
            as_user(USER, ["env", "-C", "/", "sh", "-c", script]), label="recovery", timeout=60
        )
        facts = poll_facts(out.stdout)
        segments = int(facts.get("restored", "0") or 0)
        last = facts.get("last", "").split('"')[1] if '"' in facts.get("last", "") else ""
        if facts.get("recovery") == "f":
            return Recovered(time.monotonic() - started, segments, last)
        # pg_ctl start returns before the postmaster writes its pid file: only a postmaster
        # missing on consecutive polls has stopped.
        dead = dead + 1 if facts.get("alive") != "0" else 0
        if dead >= DEAD_POLLS:
            log = await server_log(host, layout)
            raise RecoveryFailed(host, recovery_failure(log), log)
        if time.monotonic() - started > within:
            raise TimeoutError(
                f"host {host.name}: the restored copy was not promoted within {within:g} s "
                f"({segments} WAL segments replayed)"
            )
        progress(f"replaying WAL: {segments} segments restored, last {last or '-'}")
        await asyncio.sleep(POLL_S)


async def server_log(host: Host, layout: ScratchLayout, lines: int = 200) -> list[str]:
    out = await host.run(
        ["tail", "-n", str(lines), layout.server_log], check=False, label="server log", timeout=30
    )
    return out.stdout.splitlines()


def recovery_failure(log: Sequence[str]) -> str:
    """The reason a recovery stopped, from the server log: its FATAL/PANIC lines, with the
    ERROR lines of restore_command (pgBackRest names missing or damaged WAL). Pure."""
    problems = [
        m.group(0)
        for line in log
        if (m := _SERVER_PROBLEM.search(line)) and _STARTING_UP not in line
    ]
    fatal = [p for p in problems if p.startswith(("FATAL", "PANIC"))]
    errors = [p for p in problems if p.startswith("ERROR")]
    picked = list(dict.fromkeys([*errors[-3:], *fatal[-2:]]))
    return (
        "; ".join(picked)
        if picked
        else "the server stopped; see the log: " + " | ".join(log[-LOG_LINES:])
    )


def psql(layout: ScratchLayout, database: str, sql: str) -> list[str]:
    return _pg(layout, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", layout.run,
               "-p", str(layout.port), "-d", database, "-A", "-t", "-F", "\x1f",
               "-c", sql)  # fmt: skip


async def rows(host: Host, layout: ScratchLayout, database: str, sql: str) -> list[list[str]]:
    out = await host.run(psql(layout, database, sql), label="psql", timeout=3600)
    return [line.split("\x1f") for line in out.stdout.splitlines() if line]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def sentinel_rows(host: Host, layout: ScratchLayout, value: str) -> int:
    """How many rows of pgha.restore_sentinel hold ``value`` (0 when the table itself is
    not in the copy: a point in time before the first verification)."""
    sql = (
        "SELECT CASE WHEN pg_catalog.to_regclass('pgha.restore_sentinel') IS NULL THEN 0 ELSE "
        "(xpath('/row/n/text()', query_to_xml('SELECT count(*) AS n FROM "
        f"pgha.restore_sentinel WHERE value = ' || quote_literal({_literal(value)}), "
        "false, true, '')))[1]::text::bigint END"
    )
    ((n,),) = await rows(host, layout, "postgres", sql)
    return int(n)


async def databases(host: Host, layout: ScratchLayout) -> list[str]:
    found = await rows(
        host,
        layout,
        "postgres",
        "SELECT datname FROM pg_catalog.pg_database WHERE datallowconn ORDER BY 1",
    )
    return [r[0] for r in found]


@dataclass(frozen=True)
class ToolRun:
    ok: bool
    lines: list[str]
    seconds: float


async def amcheck(host: Host, layout: ScratchLayout) -> ToolRun:
    """pg_amcheck of every database: every heap and TOAST table (verify_heapam) and every
    B-tree index with --heapallindexed (each heap tuple must be found in the index).
    Installs the amcheck extension where missing (the copy is thrown away)."""
    started = time.monotonic()
    out = await host.run(
        _pg(layout, "pg_amcheck", "-h", layout.run, "-p", str(layout.port), "-U", USER,
            "--all", "--install-missing", "--heapallindexed", "--jobs=2"),
        check=False, label="pg_amcheck", timeout=6 * 3600,
    )  # fmt: skip
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    return ToolRun(out.exit_code == 0, lines[:40], time.monotonic() - started)


async def read_all_pages(host: Host, layout: ScratchLayout, names: Sequence[str]) -> ToolRun:
    """pg_dump of each database to nowhere: every row of every table is read and every
    TOAST value detoasted, so a page that cannot be read (a checksum failure, a truncated
    file) stops it."""
    started = time.monotonic()
    problems: list[str] = []
    for db in names:
        out = await host.run(
            _pg(layout, "pg_dump", "-h", layout.run, "-p", str(layout.port), "-U", USER,
                "-d", db, "-f", "/dev/null"),
            check=False, label="pg_dump", timeout=6 * 3600,
        )  # fmt: skip
        if out.exit_code != 0:
            problems += [f"{db}: {line}" for line in out.stderr.splitlines() if line.strip()]
    return ToolRun(not problems, problems[:40], time.monotonic() - started)


def _qualified(schema: str, table: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))


async def count_rows(
    host: Host, layout: ScratchLayout, tables: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], int | None]:
    """Rows of each (database, schema, table) in the copy; None for a table it lacks."""
    by_db: dict[str, list[tuple[str, str, str]]] = {}
    for key in tables:
        by_db.setdefault(key[0], []).append(key)
    counted: dict[tuple[str, str, str], int | None] = {}
    for db, keys in by_db.items():
        parts = []
        for i, (_, schema, table) in enumerate(keys):
            name = _literal(_qualified(schema, table))
            parts.append(
                f"SELECT {i}, CASE WHEN pg_catalog.to_regclass({name}) IS NULL "
                f"THEN -1 ELSE (xpath('/row/n/text()', query_to_xml('SELECT count(*) AS n "
                f"FROM ' || {name}, false, true, '')))[1]::text::bigint END"
            )
        for index, n in await rows(host, layout, db, " UNION ALL ".join(parts)):
            counted[keys[int(index)]] = None if int(n) < 0 else int(n)
    return counted


async def data_size(host: Host, layout: ScratchLayout) -> int:
    out = await host.run(["du", "-sb", layout.data], label="du", timeout=600)
    return int(out.stdout.split()[0])


def sentinel_json(stdout: str) -> dict[str, object]:
    """The sentinel script's JSON line. Pure."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            if isinstance(data, dict):
                return data
    raise ValueError(f"no JSON from the sentinel script: {stdout[-300:]!r}")
