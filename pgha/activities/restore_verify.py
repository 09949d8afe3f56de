"""Restore verification activities: the sentinel on the primary, the repository proof, the
restore into scratch space with isolated recovery, the checks of the copy, teardown.

A verification that finds damage is a *result* (``ok=False``, ``problems``, failed
checks), not an exception: the workflow records it in the report and fails itself with the
reason. Exceptions are for the infrastructure (a host unreachable: retried).
"""

from __future__ import annotations

import json
import time
from importlib import resources

from temporalio import activity

from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import param, permanent, translated
from pgha.activities.haproxy import PERMANENT, require_role
from pgha.backup_models import (
    CheckOutcome,
    RepositoryProof,
    RestoreOutcome,
    Sentinel,
    VerifyStep,
)
from pgha.checks import wal_chain
from pgha.errors import CommandFailed
from pgha.hosts.facts.pgbackrest import as_user
from pgha.hosts.ops import restore_verify as ops
from pgha.hosts.ops.pgbackrest import PgbackrestFailed
from pgha.render.pgbackrest import REPO_USER
from pgha.render.restore_verify import (
    RecoveryTarget,
    scratch_layout,
    verify_hba_conf,
    verify_pgbackrest_conf,
    verify_postgres_conf,
)
from pgha.spec import Role
from pgha.steps import HostStep

#: Extra room the scratch filesystem must have beyond the set's size (WAL, logs).
ROOM_FACTOR = 1.1
ROOM_SLACK_BYTES = 256 * 1024 * 1024


def _script() -> str:
    return (resources.files("pgha.hosts") / "remote" / "sentinel_snapshot.py").read_text()


@activity.defn(name="verify.write_sentinel")
async def write_sentinel(step: HostStep) -> Sentinel:
    """On the primary (``step.host``): write the sentinel ``params["value"]``, count every
    user table's rows as of its commit, switch WAL and wait until the segment holding it is
    archived. Writers to user tables pause for a few milliseconds (bounded by
    backup.verify.lock_timeout_ms); see pgha/hosts/remote/sentinel_snapshot.py.

    :raises ApplicationError: NotPrimary / SentinelFailed (non-retryable) when PostgreSQL
        refuses, LockBusy (retryable) when the tables could not be locked.
    """
    value = param(step, "value")
    spec = step.spec
    async with translated(*PERMANENT):
        require_role(step, Role.postgres)
    args = {
        "port": spec.postgres.port,
        "value": value,
        "lock_timeout_ms": spec.backup.verify.lock_timeout_ms,
    }
    async with heartbeating(), open_host(step.target) as host:
        out = await host.run(
            as_user("postgres", ["python3", "-", json.dumps(args)]),
            input=_script(),
            check=False,
            label="sentinel",
            timeout=1800,
        )
    if out.exit_code == 3:
        kind = "NotPrimary" if "standby" in out.stderr else "SentinelFailed"
        raise permanent(
            f"host {step.host}: writing the sentinel failed: {out.stderr.strip()}", kind
        )
    if out.exit_code == 4:
        raise RuntimeError(f"host {step.host}: {out.stderr.strip()}")  # retried later
    if out.exit_code != 0:
        raise CommandFailed(step.host, step.target.address, "sentinel script", out.exit_code,
                            out.stderr[-2000:])  # fmt: skip
    return Sentinel.model_validate(
        {k: v for k, v in ops.sentinel_json(out.stdout).items() if k != "attempts"}
    )


def _require_verify_host(step: VerifyStep | HostStep) -> None:
    """:raises ValueError: the step's host is not the spec's verify host (a workflow bug)."""
    target = step.spec.verify_host()
    if target is None or target.name != step.host:
        raise ValueError(
            f"host {step.host} is not the spec's verify host "
            f"({target.name if target else 'none'}): restores never go to another host"
        )


def _history_path(step: VerifyStep, timeline: int) -> str:
    return f"archive/{step.spec.stanza}/{step.backup.archive_id}/{timeline:08X}.history"


@activity.defn(name="verify.check_repository")
async def check_repository(step: VerifyStep) -> RepositoryProof:
    """`pgbackrest verify` (checksums and sizes of every file of every set and every
    archived segment), then the walk of the WAL chain from the set's first segment to the
    sentinel's across timeline switches: every segment the restore needs is in the
    repository and verified. Damage to this set or to needed WAL is a problem; damage
    elsewhere a warning. Runs on the repository host (``step.host``); read-only."""
    spec = step.spec
    if Role.backup_repo not in spec.host(step.host).roles:
        raise permanent(f"host {step.host} is not the backup-repo host", "InvalidStepInput")
    started = time.monotonic()
    async with heartbeating(), open_host(step.target) as host:
        text = await ops.repository_verify(host, REPO_USER, spec.stanza)
        stop_tl = wal_chain.timeline_of(step.sentinel.wal_file)
        history_text = ""
        if stop_tl > 1:
            path = _history_path(step, stop_tl)
            history_text = await ops.repository_file(host, REPO_USER, spec.stanza, path) or ""
    found = wal_chain.parse_verify(text)
    label = step.backup.label
    problems = [f"set {label}: {p}" for p in found.problems_of_set(label)]
    status = found.backup_status.get(label)
    if status is not None and status != "valid":
        problems.append(f"set {label}: pgbackrest verify says {status}")
    needed: list[str] = []
    try:
        history = wal_chain.parse_history(history_text)
        if stop_tl > 1 and not history:
            problems.append(
                f"timeline {stop_tl}'s history file is missing from the repository "
                f"({_history_path(step, stop_tl)}): recovery cannot follow the timeline switch"
            )
        spans = wal_chain.needed_segments(step.backup.wal_start, step.sentinel.wal_file, history)
        needed = [
            f"{wal_chain.segment_name(tl, a)}..{wal_chain.segment_name(tl, b)}"
            for tl, a, b in spans
        ]
        ranges = [r for r in found.ranges if r.archive_id == step.backup.archive_id]
        problems += [
            f"WAL {gap} is missing from the repository (needed from the set's start "
            f"{step.backup.wal_start} to the sentinel's {step.sentinel.wal_file})"
            for gap in wal_chain.wal_gaps(ranges, spans)
        ]
        damaged_wal = found.wal_problems()
        needed_names = {
            wal_chain.segment_name(tl, n) for tl, a, b in spans for n in range(a, b + 1)
        }
        for problem in damaged_wal:
            segment = problem.rsplit("/", 1)[-1][:24]
            if segment in needed_names:
                problems.append(f"needed WAL damaged: {problem}")
    except ValueError as err:
        problems.append(str(err))
        damaged_wal = found.wal_problems()
    warnings = [
        f"elsewhere in the repository: {what} {path}"
        for what, path in found.file_problems
        if not path.startswith(label) and not any(path in p for p in problems)
    ] + [w for w in found.warnings if "verify command" not in w]
    return RepositoryProof(
        seconds=round(time.monotonic() - started, 2),
        problems=problems,
        warnings=warnings,
        needed_wal=needed,
    )


@activity.defn(name="verify.restore")
async def restore(step: VerifyStep) -> RestoreOutcome:
    """Restore the set into the scratch directory, configure the copy isolated (see
    pgha.render.restore_verify), start it and wait until recovery reached the target (the
    sentinel's transaction, or ``target_time``) and promoted it. Starts from an empty
    scratch directory on every attempt, so a retry is a clean re-run."""
    spec = step.spec
    layout = scratch_layout(spec)
    target = (
        RecoveryTarget(time=step.target_time)
        if step.target_time is not None
        else RecoveryTarget(xid=step.sentinel.xid)
    )
    within = spec.backup.verify.timeout_hours * 3600
    async with translated(*PERMANENT):
        _require_verify_host(step)
        pgbackrest_conf = verify_pgbackrest_conf(spec, layout, step.host)
        postgres_conf = verify_postgres_conf(spec, layout, target)
    async with heartbeating(), open_host(step.target) as host:
        await ops.prepare_scratch(host, layout, pgbackrest_conf)
        room = await ops.free_bytes(host, layout.root)
        need = int(step.backup.size_bytes * ROOM_FACTOR) + ROOM_SLACK_BYTES
        if room < need:
            return RestoreOutcome(
                ok=False,
                reason=(
                    f"host {step.host}: {layout.root} has {room / 2**30:.1f} GiB free, the set "
                    f"needs about {need / 2**30:.1f} GiB; free space or move "
                    "backup.verify.scratch_path"
                ),
            )
        started = time.monotonic()
        activity.heartbeat("restoring")
        try:
            await ops.restore(host, layout, spec.stanza, step.backup.label, within)
        except PgbackrestFailed as err:
            if not err.permanent:
                raise
            return RestoreOutcome(ok=False, reason=str(err))
        restore_s = time.monotonic() - started
        await ops.configure_recovery(host, layout, postgres_conf, verify_hba_conf())
        await ops.start(host, layout)
        try:
            recovered = await ops.wait_promoted(
                host, layout, within=within, progress=activity.heartbeat
            )
        except ops.RecoveryFailed as err:
            return RestoreOutcome(
                ok=False, reason=f"recovery failed: {err.reason}", restore_s=round(restore_s, 2),
                log_tail=err.log[-ops.LOG_LINES :],
            )  # fmt: skip
        size = await ops.data_size(host, layout)
    return RestoreOutcome(
        ok=True,
        restore_s=round(restore_s, 2),
        recovery_s=round(recovered.seconds, 2),
        wal_segments=recovered.segments,
        last_segment=recovered.last_segment,
        restored_bytes=size,
    )


@activity.defn(name="verify.prove")
async def prove(step: VerifyStep) -> list[CheckOutcome]:
    """The checks of the promoted copy: the sentinel present (or absent for a target time
    before it), pg_amcheck --heapallindexed of every database, every page read through
    pg_dump, and, when recovered to the sentinel, every user table's row count equal to
    the source's at the sentinel. Read-only on the cluster."""
    layout = scratch_layout(step.spec)
    sentinel = step.sentinel
    expected = step.target_time is None or step.target_time >= sentinel.written_at
    checks: list[CheckOutcome] = []
    async with translated(*PERMANENT):
        _require_verify_host(step)
    async with heartbeating(), open_host(step.target) as host:
        t = time.monotonic()
        n = await ops.sentinel_rows(host, layout, sentinel.value)
        found = n > 0
        as_expected = "as expected" if found == expected else "expected the opposite"
        checks.append(
            CheckOutcome(
                name="sentinel",
                passed=found == expected,
                detail=(
                    f"sentinel {sentinel.value} ({sentinel.written_at:%Y-%m-%d %H:%M:%S} UTC) "
                    f"{'found' if found else 'absent'}, {as_expected}"
                ),
                seconds=round(time.monotonic() - t, 2),
            )
        )
        activity.heartbeat("pg_amcheck")
        am = await ops.amcheck(host, layout)
        checks.append(
            CheckOutcome(
                name="pg_amcheck",
                passed=am.ok,
                detail="no corruption in any heap, TOAST table or B-tree index"
                if am.ok
                else "; ".join(am.lines[:8]),
                seconds=round(am.seconds, 2),
            )
        )
        activity.heartbeat("reading every page")
        names = await ops.databases(host, layout)
        dump = await ops.read_all_pages(host, layout, names)
        checks.append(
            CheckOutcome(
                name="read every page",
                passed=dump.ok,
                detail=f"pg_dump read all of {len(names)} databases"
                if dump.ok
                else "; ".join(dump.lines[:8]),
                seconds=round(dump.seconds, 2),
            )
        )
        if step.target_time is None:
            t = time.monotonic()
            keys = [(r.database, r.schema_name, r.table) for r in sentinel.row_counts]
            counted = await ops.count_rows(host, layout, keys) if keys else {}
            wrong = []
            for r in sentinel.row_counts:
                got = counted.get((r.database, r.schema_name, r.table))
                if got != r.rows:
                    wrong.append(
                        f"{r.name}: source {r.rows}, restored {'no table' if got is None else got}"
                    )
            total = sum(r.rows for r in sentinel.row_counts)
            checks.append(
                CheckOutcome(
                    name="row counts",
                    passed=not wrong,
                    detail=f"{len(keys)} tables, {total} rows: equal to the source at the sentinel"
                    if not wrong
                    else "; ".join(wrong[:8]),
                    seconds=round(time.monotonic() - t, 2),
                )
            )
    return checks


@activity.defn(name="verify.teardown")
async def teardown(step: HostStep) -> bool:
    """Stop the scratch copy and remove its directory. Idempotent; runs even when the
    verification failed or was cancelled. Returns whether anything was there."""
    layout = scratch_layout(step.spec)
    async with translated(*PERMANENT):
        _require_verify_host(step)
    async with heartbeating(), open_host(step.target) as host:
        return await ops.remove_scratch(host, layout)
