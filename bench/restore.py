"""Benchmark: pgha's verify-restore of a pgbench database of a few GB against a bare
`pgbackrest restore` + PostgreSQL startup of the same set on the same host.

Makes (or reuses) database ``bench`` with `pgbench -i -s SCALE` on the lab's primary, takes
a full backup through pgha's Backup workflow, times pgha's VerifyRestore of that set (its
report's phases) and the baseline (bench/bare_restore.py) on the verify host, a few rounds
in alternating order, and prints medians and the ratio. Writes bench/results/restore.json.
The lab must be up and provisioned; database bench stays (re-runs reuse it) unless
--drop-data.

Run: .venv/bin/python -m bench.restore [--scale N] [--rounds N] [--fresh] [--drop-data]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from bench.bare_restore import BIN, BareRun, ExecFailed, bare_restore, run_in
from pgha.backup_models import (
    BackupInput,
    BackupResult,
    BackupType,
    VerifyReport,
    VerifyRestoreInput,
)
from pgha.errors import ClusterBusy
from pgha.lab.hosts import lab_status
from pgha.operations import BACKUP, VERIFY_RESTORE, Operation, start_operation
from pgha.report_text import human_bytes
from pgha.settings import temporal_settings
from pgha.spec import ClusterSpec, Role, load_spec
from pgha.temporal import connect
from pgha.worker import in_process_worker

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATABASE = "bench"
#: pgbench scale 200 is about 3 GB (20 million accounts); -i takes about a minute here.
DEFAULT_SCALE = 200
#: Rounds of each restore: one restore's time varies by a few seconds with the page cache.
DEFAULT_ROUNDS = 3
#: Another operation (somebody's test) may hold the cluster's lock: wait this long for it.
BUSY_WAIT_S = 900
#: How long an interrupted bench waits for its cancelled workflow to tear down.
CANCEL_WAIT_S = 120
#: Restore room beyond the set's size (WAL replayed, logs), as pgha asks for.
ROOM_FACTOR, ROOM_SLACK = 1.1, 256 * 2**20

R = TypeVar("R")


class BenchError(Exception):
    """The bench cannot go on: the message says why (printed without a traceback)."""


# ------------------------------------------------------------------ the lab


@dataclass(frozen=True)
class Lab:
    spec: ClusterSpec
    #: Lab host name -> docker container.
    containers: dict[str, str]
    #: The restore-verification host, which is also the repository host.
    verify_host: str


async def find_lab() -> Lab:
    """The lab's spec and containers; the verify host must be the repository host, where
    the baseline reads the repository directly (the "same host" of the comparison).

    :raises BenchError: no lab, or a layout the bench does not handle.
    """
    spec = load_spec("lab", ROOT / "clusters")
    containers = {h.name: h.container for h in await lab_status() if h.state == "running"}
    target = spec.verify_host()
    if target is None or Role.backup_repo not in target.roles:
        raise BenchError("the lab's verify-target host must also be its backup-repo host")
    missing = [h.name for h in spec.hosts if h.name not in containers]
    if missing:
        raise BenchError(f"lab hosts not running: {', '.join(missing)} (`pgha lab status`)")
    return Lab(spec=spec, containers=containers, verify_host=target.name)


async def find_primary(lab: Lab) -> str:
    """The running Patroni leader, asked of each PostgreSQL host until one answers.

    :raises BenchError: no member answers or none leads.
    """
    for host in lab.spec.hosts_with(Role.postgres):
        try:
            out = await run_in(
                lab.containers[host.name],
                "patronictl -c /etc/patroni/config.yml list -f json",
                timeout=60,
            )
        except ExecFailed:
            continue
        for member in json.loads(out):
            if member.get("Role") == "Leader" and member.get("State") == "running":
                return str(member["Member"])
    raise BenchError("no running Patroni leader in the lab (`pgha status --cluster lab`)")


# ------------------------------------------------------------------ the data


async def psql(container: str, database: str, sql: str, port: int) -> str:
    """One SQL statement as the postgres OS user over the local socket; unaligned output."""
    quoted = sql.replace("'", "'\\''")
    return (
        await run_in(
            container,
            f"psql -X -A -t -v ON_ERROR_STOP=1 -p {port} -d {database} -c '{quoted}'",
            user="postgres",
        )
    ).strip()


async def pgbench_scale(container: str, port: int) -> int | None:
    """The scale of complete pgbench tables in database ``bench``, the way pgbench itself
    finds it (rows of pgbench_branches); None when the database or a table is missing, or
    when -i did not reach its last step (the accounts primary key)."""
    found = await psql(
        container, "postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{DATABASE}'",
        port,
    )  # fmt: skip
    if found != "1":
        return None
    complete = await psql(
        container, DATABASE,
        "SELECT to_regclass('public.pgbench_branches') IS NOT NULL "
        "AND to_regclass('public.pgbench_accounts_pkey') IS NOT NULL",
        port,
    )  # fmt: skip
    if complete != "t":
        return None
    return int(await psql(container, DATABASE, "SELECT count(*) FROM pgbench_branches", port))


@dataclass(frozen=True)
class Data:
    primary: str
    scale: int
    #: Whether this run ran pgbench -i (False: the tables of that scale were there).
    created: bool
    seconds: float
    database_bytes: int


async def ensure_data(lab: Lab, primary: str, scale: int, fresh: bool) -> Data:
    """Database ``bench`` with pgbench tables of ``scale`` on the primary: reused when they
    are there (re-runs are quick), else (or with ``fresh``) made by `pgbench -i`."""
    container, port = lab.containers[primary], lab.spec.postgres.port
    started = time.monotonic()
    have = None if fresh else await pgbench_scale(container, port)
    if have != scale:
        print(f"making the data: pgbench -i -s {scale} into database {DATABASE} on {primary}")
        exists = await psql(
            container, "postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{DATABASE}'",
            port,
        )  # fmt: skip
        if exists != "1":
            await psql(container, "postgres", f"CREATE DATABASE {DATABASE}", port)
        await run_in(
            container,
            f"{BIN}/pgbench -i -q -s {scale} -p {port} {DATABASE}",
            user="postgres",
            timeout=3 * 3600,
        )
    size = await psql(container, DATABASE, f"SELECT pg_database_size('{DATABASE}')", port)
    return Data(
        primary=primary,
        scale=scale,
        created=have != scale,
        seconds=round(time.monotonic() - started, 2),
        database_bytes=int(size),
    )


async def drop_data(lab: Lab, primary: str) -> None:
    await psql(
        lab.containers[primary], "postgres", f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)",
        lab.spec.postgres.port,
    )  # fmt: skip


# ------------------------------------------------------------------ pgha's operations


async def start_when_free(
    client: Client, op: Operation, cluster: str, arg: Any, task_queue: str
) -> WorkflowHandle[Any, Any]:
    """Start ``op``, waiting (up to BUSY_WAIT_S) while another operation holds the cluster.

    :raises BenchError: still busy after the wait.
    """
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            return await start_operation(client, op, cluster, arg, task_queue=task_queue)
        except ClusterBusy as err:
            if time.monotonic() > deadline:
                raise BenchError(str(err)) from None
            print(f"waiting: {err}")
            await asyncio.sleep(15)


async def outcome(handle: WorkflowHandle[Any, Any], parse: Callable[[Any], R]) -> R:
    """The workflow's result, parsed.

    :raises BenchError: it failed (pgha's reason; for a verification, the report's).
    """
    try:
        return parse(await handle.result())
    except WorkflowFailureError as err:
        cause: BaseException | None = err.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.__cause__
        raise BenchError(f"{handle.id} failed: {cause or err}") from None
    except asyncio.CancelledError:
        # Interrupted (Ctrl-C): the bench's worker and task queue go away with it, and the
        # workflow would hold the cluster's lock with nobody to run it. Cancel it while the
        # worker is still here to tear the scratch copy down.
        print(f"interrupted: cancelling {handle.id}")
        with contextlib.suppress(Exception):
            await handle.cancel()
            await asyncio.wait_for(handle.result(), CANCEL_WAIT_S)
        raise


async def activity_times(handle: WorkflowHandle[Any, Any]) -> dict[str, float]:
    """Seconds from scheduling to completion of each activity type (summed over its runs),
    from the workflow history: where the time between the report's phases went."""
    history = await handle.fetch_history()
    scheduled: dict[int, tuple[str, datetime]] = {}
    spent: dict[str, float] = {}
    for e in history.events:
        at = e.event_time.ToDatetime()
        if e.HasField("activity_task_scheduled_event_attributes"):
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[e.event_id] = (name, at)
        elif e.HasField("activity_task_completed_event_attributes"):
            sid = e.activity_task_completed_event_attributes.scheduled_event_id
            name, since = scheduled[sid]
            spent[name] = round(spent.get(name, 0.0) + (at - since).total_seconds(), 2)
    return spent


async def take_backup(client: Client, spec: ClusterSpec, task_queue: str) -> BackupResult:
    """A full backup through pgha's Backup workflow (what `pgha run backup` starts)."""
    handle = await start_when_free(
        client, BACKUP, spec.cluster, BackupInput(spec=spec, type=BackupType.full), task_queue
    )
    return await outcome(handle, BackupResult.model_validate)


@dataclass(frozen=True)
class PghaRun:
    report: VerifyReport
    #: Wall time of the VerifyRestore workflow as the bench saw it (start to result).
    wall_s: float
    activities: dict[str, float]


async def verify_restore(client: Client, spec: ClusterSpec, label: str, task_queue: str) -> PghaRun:
    """pgha's verify-restore of exactly set ``label`` (`pgha run verify-restore --set`)."""
    started = time.monotonic()
    inp = VerifyRestoreInput(spec=spec, set_label=label)
    handle = await start_when_free(client, VERIFY_RESTORE, spec.cluster, inp, task_queue)
    report = await outcome(handle, VerifyReport.model_validate)
    wall_s = round(time.monotonic() - started, 2)
    return PghaRun(report, wall_s, await activity_times(handle))


# ------------------------------------------------------------------ report


async def repo_bytes(lab: Lab) -> int:
    out = await run_in(
        lab.containers[lab.verify_host], f"du -sb {lab.spec.backup.repo_path}", timeout=600
    )
    return int(out.split()[0])


def git_commit() -> str:
    """HEAD, with ``-dirty`` when tracked files have changes (other people's edits count)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "HEAD") + ("-dirty" if dirty else "")


#: The report's phases, in order, with what each one does.
PHASES = {
    "sentinel": "sentinel (row counts on the primary, WAL)",
    "verify": "verify (pgbackrest verify, WAL chain)",
    "restore": "restore (pgbackrest restore)",
    "recovery": "recovery (start to promoted)",
    "checks": "checks (all four below)",
    "teardown": "teardown (stop, rm -rf)",
    "other": "other (scratch setup, du, Temporal)",
    "total": "total",
}
BARE_PARTS = {
    "restore": "restore (pgbackrest restore)",
    "configure": "configure (write the settings)",
    "startup": "startup (start to promoted, accepting)",
    "total": "total",
    "teardown": "(stop, rm -rf: not in the total)",
}


def pgha_figures(run: PghaRun) -> dict[str, float]:
    """Seconds of each phase of one verification, "other" being the rest of the total (the
    restore activity's scratch setup and du, Temporal's scheduling), then of each check."""
    t = run.report.timings
    figures = {p: t.get(p, 0.0) for p in PHASES if p not in ("other", "total")}
    figures["other"] = round(t["total"] - sum(figures.values()), 2)
    figures["total"] = t["total"]
    figures |= {f"check {c.name}": c.seconds for c in run.report.checks}
    return figures


def bare_figures(run: BareRun) -> dict[str, float]:
    return {
        "restore": run.restore_s,
        "configure": run.configure_s,
        "startup": run.startup_s,
        "total": round(run.total_s, 2),
        "teardown": run.teardown_s,
    }


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float


def spread(rounds: list[dict[str, float]]) -> dict[str, Spread]:
    """Median, lowest and highest of each figure over the rounds."""
    keys = dict.fromkeys(k for r in rounds for k in r)
    return {
        k: Spread(statistics.median(v), min(v), max(v))
        for k in keys
        if (v := [r[k] for r in rounds if k in r])
    }


def ratios(pgha: dict[str, Spread], bare: dict[str, Spread]) -> dict[str, float]:
    """Medians: pgha's whole verification over the bare restore + startup (the issue's
    figure), and like for like: pgha's restore + recovery over the same bare parts."""
    like = pgha["restore"].median + pgha["recovery"].median
    return {
        "total": round(pgha["total"].median / bare["total"].median, 2),
        "restore_and_recovery": round(like / bare["total"].median, 2),
    }


@dataclass(frozen=True)
class Outcome:
    """Everything one bench run measured."""

    data: Data
    backup: BackupResult
    backup_s: float
    pgha: list[PghaRun]
    bare: list[BareRun]
    sizes: dict[str, int]
    host: str

    @property
    def pgha_spread(self) -> dict[str, Spread]:
        return spread([pgha_figures(r) for r in self.pgha])

    @property
    def bare_spread(self) -> dict[str, Spread]:
        return spread([bare_figures(r) for r in self.bare])


def _rows(title: str, names: dict[str, str], figures: dict[str, Spread]) -> list[str]:
    lines = [f"{title:46} {'median':>7} {'min':>7} {'max':>7}"]
    for key, name in names.items():
        f = figures[key]
        lines.append(f"  {name:44} {f.median:7.1f} {f.low:7.1f} {f.high:7.1f}")
    return lines


def table(o: Outcome) -> str:
    """The printed figures."""
    pgha, bare, b = o.pgha_spread, o.bare_spread, o.backup.backup
    checks = {k: "  " + k.removeprefix("check ") for k in pgha if k.startswith("check ")}
    r = ratios(pgha, bare)
    rounds = len(o.pgha)
    pause = max((r.report.sentinel.write_pause_ms for r in o.pgha if r.report.sentinel), default=0)
    return "\n".join([
        f"data: pgbench scale {o.data.scale}, database {DATABASE} "
        f"{human_bytes(o.data.database_bytes)} on {o.data.primary} (and each replica), "
        + ("made by pgbench -i" if o.data.created else "reused") + f" in {o.data.seconds:.1f} s",
        f"set {b.label}: {human_bytes(b.size_bytes)} of databases, "
        f"{human_bytes(b.repo_size_bytes)} in the repository; pgha's full backup took "
        f"{o.backup_s:.1f} s",
        f"{rounds} round(s), seconds; writers paused by the sentinel at most {pause:.0f} ms",
        "",
        *_rows(f"pgha verify-restore on {o.host}", {**PHASES, **checks}, pgha),
        *_rows(f"bare restore + startup on {o.host}", BARE_PARTS, bare),
        "",
        f"ratio pgha total / bare total:                {r['total']:.2f}x",
        f"ratio pgha (restore + recovery) / bare total: {r['restore_and_recovery']:.2f}x",
        "sizes: " + ", ".join(f"{k} {human_bytes(v)}" for k, v in o.sizes.items()),
    ])  # fmt: skip


def result_json(o: Outcome, commit: str, parts: dict[str, float]) -> dict[str, Any]:
    def medians(figures: dict[str, Spread]) -> dict[str, dict[str, float]]:
        return {k: asdict(v) for k, v in figures.items()}

    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "pgha_commit": commit,
        "machine": {"hostname": socket.gethostname(), "cpus": os.cpu_count()},
        "host": o.host,
        "scale": o.data.scale,
        "label": o.backup.backup.label,
        "data": asdict(o.data),
        "backup_s": o.backup_s,
        "rounds": len(o.pgha),
        "ratio": ratios(o.pgha_spread, o.bare_spread),
        "pgha_s": medians(o.pgha_spread),
        "bare_s": medians(o.bare_spread),
        "sizes_bytes": o.sizes,
        "pgha_runs": [
            {
                "workflow_id": run.report.workflow_id,
                "timings_s": run.report.timings,
                "wall_s": run.wall_s,
                "checks": [c.model_dump(mode="json") for c in run.report.checks],
                "activities_s": run.activities,
                "wal_segments": run.report.sizes.get("wal_segments"),
                "sentinel_write_pause_ms": (
                    run.report.sentinel.write_pause_ms if run.report.sentinel else None
                ),
            }
            for run in o.pgha
        ],
        "bare_runs": [{**asdict(run), "total_s": round(run.total_s, 2)} for run in o.bare],
        "bench_parts_s": parts,
    }


# ------------------------------------------------------------------ main


async def timed(parts: dict[str, float], name: str, work: Awaitable[R]) -> R:
    """``work``'s result; its seconds added to ``parts[name]``."""
    t = time.monotonic()
    try:
        return await work
    finally:
        parts[name] = round(parts.get(name, 0.0) + time.monotonic() - t, 2)


async def measure(lab: Lab, data: Data, rounds: int, parts: dict[str, float]) -> Outcome:
    """A full backup, then ``rounds`` rounds of pgha's verify-restore and the bare restore
    of that set, alternating which goes first (the page cache and the writeback of the
    previous round's 3 GB favour neither). The workflows run on a worker in this process,
    on a task queue of its own, as in bench/provision.py."""
    spec, container = lab.spec, lab.containers[lab.verify_host]
    client = await connect(temporal_settings())
    task_queue = f"bench-restore-{int(time.time())}"
    pgha_runs: list[PghaRun] = []
    bare_runs: list[BareRun] = []
    async with in_process_worker(client, task_queue):
        print("full backup through pgha (Backup workflow)")
        backup = await timed(parts, "backup", take_backup(client, spec, task_queue))
        b = backup.backup
        need = int(b.size_bytes * ROOM_FACTOR) + ROOM_SLACK

        async def pgha_round() -> None:
            print(f"  pgha verify-restore of set {b.label}")
            run = verify_restore(client, spec, b.label, task_queue)
            pgha_runs.append(await timed(parts, "pgha_verify_restore", run))

        async def bare_round() -> None:
            print(f"  bare pgbackrest restore + startup of set {b.label} on {lab.verify_host}")
            run = bare_restore(container, spec.stanza, b.label, spec.backup.repo_path, need)
            bare_runs.append(await timed(parts, "bare", run))

        for i in range(rounds):
            print(f"round {i + 1} of {rounds}")
            for step in (pgha_round, bare_round) if i % 2 == 0 else (bare_round, pgha_round):
                await step()
    sizes = {
        "bench_database": data.database_bytes,
        "set_databases": b.size_bytes,
        "set_in_repo": b.repo_size_bytes,
        "repo_total": await repo_bytes(lab),
        "restored": bare_runs[-1].restored_bytes,
    }
    backup_s = parts["backup"]
    return Outcome(data, backup, backup_s, pgha_runs, bare_runs, sizes, lab.verify_host)


async def main(scale: int, rounds: int, fresh: bool, drop: bool) -> None:
    parts: dict[str, float] = {}
    started = time.monotonic()
    lab = await find_lab()
    primary = await find_primary(lab)
    try:
        data = await timed(parts, "data", ensure_data(lab, primary, scale, fresh))
        measured = await measure(lab, data, rounds, parts)
    finally:
        if drop:
            await drop_data(lab, primary)
            print(f"database {DATABASE} dropped")
    parts["whole_bench"] = round(time.monotonic() - started, 2)
    commit = await asyncio.to_thread(git_commit)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "restore.json"
    path.write_text(json.dumps(result_json(measured, commit, parts), indent=2) + "\n")
    print()
    print(table(measured))
    print("bench parts: " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()))
    if not drop:
        print(
            f"database {DATABASE} kept: {human_bytes(data.database_bytes)} on each PostgreSQL "
            "host, and in every later backup and verify-restore of the lab; --drop-data drops it"
        )
    print(f"written: {path.relative_to(ROOT)}")


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=int, default=DEFAULT_SCALE,
                        help=f"pgbench scale (default {DEFAULT_SCALE}, about 3 GB)")  # fmt: skip
    parser.add_argument("--fresh", action="store_true",
                        help="run pgbench -i even when tables of that scale are there")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"verify-restores and bare restores to take the median of "
                             f"(default {DEFAULT_ROUNDS})")  # fmt: skip
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument("--keep-data", action="store_true",
                      help="keep database bench afterwards (the default)")  # fmt: skip
    keep.add_argument("--drop-data", action="store_true",
                      help="drop database bench afterwards")  # fmt: skip
    args = parser.parse_args()
    if args.rounds < 1 or args.scale < 1:
        parser.error("--rounds and --scale must be at least 1")
    try:
        asyncio.run(main(args.scale, args.rounds, args.fresh, args.drop_data))
    except (BenchError, ExecFailed) as err:
        sys.exit(f"bench.restore: {err}")
    except KeyboardInterrupt:
        sys.exit("bench.restore: interrupted (the scratch copies are removed)")


if __name__ == "__main__":
    cli()
