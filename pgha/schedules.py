"""Makes the Temporal server's schedules match the spec, and lists, pauses, resumes and
triggers them (client side). No workflow code: the schedules start ``ScheduledRun``.

The ids are fixed (``pgha:<cluster>:<kind>``), so sync reads exactly those with describe
(strongly consistent) and never uses the eventually consistent schedule list to decide
what to create, change or delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from pgha.backup_models import ScheduledRunInput, ScheduleKind
from pgha.errors import PghaError, SpecError
from pgha.schedule_models import (  # the pure half, re-exported for callers
    MEMO_CRON,
    RecentRun,
    ScheduleSnapshot,
    differences,
    managed_note,
    parse_schedule_id,
    schedule_id,
    spec_field,
)
from pgha.schedule_models import DesiredSchedule as DesiredSchedule
from pgha.schedule_models import ScheduleRow as ScheduleRow
from pgha.schedule_models import SyncResult as SyncResult
from pgha.schedule_models import TriggerResult as TriggerResult
from pgha.schedule_models import desired_schedules as desired_schedules
from pgha.search_attributes import CLUSTER_ATTR
from pgha.spec import ClusterSpec

T = TypeVar("T")

#: How many recent runs `list_schedules` reports per schedule, newest first.
RECENT_RUNS = 3
#: How many next run times `list_schedules` reports per schedule.
NEXT_RUNS = 3
#: How long `trigger_schedule` waits to see the run it caused.
TRIGGER_WAIT_S = 10.0


class ScheduleNotFound(PghaError):
    """A pgha schedule the command needs does not exist on the Temporal server.

    Belongs in the tree of pgha/errors.py; kept here while that file was out of this
    change's reach.
    """


# ---------------------------------------------------------------- reading the server


async def _describe(client: Client, sid: str) -> ScheduleDescription | None:
    try:
        return await client.get_schedule_handle(sid).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _decode(client: Client, value: Any, hint: type[T]) -> T | None:
    """A payload (or an already plain value) as ``hint``; None when it does not decode."""
    if isinstance(value, hint):
        return value
    if not isinstance(value, Payload):
        return None
    try:
        [decoded] = await client.data_converter.decode([value], [hint])
    except Exception:  # a stale or foreign payload is a difference, not an error
        return None
    return decoded if isinstance(decoded, hint) else None


async def snapshot_of(client: Client, desc: ScheduleDescription) -> ScheduleSnapshot:
    """What the server holds, decoded with the client's data converter (so a payload codec
    is undone before comparing, and the comparison is by value, not by bytes)."""
    action = desc.schedule.action
    policy = desc.schedule.policy
    if not isinstance(action, ScheduleActionStartWorkflow):
        return ScheduleSnapshot(
            workflow="",
            workflow_id="",
            task_queue="",
            cron=None,
            run_input=None,
            search_attributes={},
            summary=None,
            overlap=policy.overlap.name,
            catchup_window_s=None,
            pause_on_failure=policy.pause_on_failure,
        )
    args = list(action.args)
    memo: dict[str, Any] = dict(action.memo or {})
    window = policy.catchup_window
    return ScheduleSnapshot(
        workflow=action.workflow,
        workflow_id=action.id,
        task_queue=action.task_queue,
        cron=await _decode(client, memo.get(MEMO_CRON), str),
        run_input=await _decode(client, args[0], ScheduledRunInput) if len(args) == 1 else None,
        search_attributes={p.key.name: str(p.value) for p in action.typed_search_attributes},
        summary=await _decode(client, action.static_summary, str),
        overlap=policy.overlap.name,
        catchup_window_s=window.total_seconds() if window is not None else None,
        pause_on_failure=policy.pause_on_failure,
    )


# ---------------------------------------------------------------- sync


def _refused(want: DesiredSchedule, err: RPCError) -> Exception:
    """A cron the server cannot parse is a spec error naming its field; anything else is
    the RPC error itself (the CLI words those)."""
    if err.status == RPCStatusCode.INVALID_ARGUMENT and "spec" in err.message.lower():
        return SpecError(
            f"cluster {want.cluster}",
            [
                f"{spec_field(want.kind)}: the Temporal server refuses the cron "
                f"{want.cron!r}: {err.message}"
            ],
        )
    return err


async def _create(client: Client, want: DesiredSchedule) -> None:
    # On the schedule itself too, so the Web UI's Schedules page can filter by cluster.
    attrs = TypedSearchAttributes([SearchAttributePair(CLUSTER_ATTR, want.cluster)])
    try:
        await client.create_schedule(want.id, want.schedule(), search_attributes=attrs)
    except ScheduleAlreadyRunningError:  # another sync created it meanwhile
        await _update(client, want)
    except RPCError as err:
        raise _refused(want, err) from None


async def _update(client: Client, want: DesiredSchedule) -> None:
    def updater(inp: ScheduleUpdateInput) -> ScheduleUpdate:
        # The state is the operator's: a pause and its note survive every sync.
        return ScheduleUpdate(schedule=want.schedule(inp.description.schedule.state))

    try:
        await client.get_schedule_handle(want.id).update(updater)
    except RPCError as err:
        raise _refused(want, err) from None


async def _delete(client: Client, sid: str) -> None:
    try:
        await client.get_schedule_handle(sid).delete()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise


async def sync_schedules(
    client: Client, spec: ClusterSpec, task_queue: str, dry_run: bool = False
) -> SyncResult:
    """Make the cluster's pgha schedules match ``spec``: create the missing, update the
    changed (cron, the spec the runs get, task queue, policy), delete those the spec no
    longer asks for. Other clusters' and non-pgha schedules are never touched. Idempotent.

    :param dry_run: only report what would change.
    :raises SpecError: the server refuses a cron (names ``backup.schedule.<kind>``).
    """
    wanted = {d.kind: d for d in desired_schedules(spec, task_queue)}
    created: list[str] = []
    updated: list[str] = []
    deleted: list[str] = []
    unchanged: list[str] = []
    changes: dict[str, list[str]] = {}
    for kind in ScheduleKind:
        sid = schedule_id(spec.cluster, kind)
        desc = await _describe(client, sid)
        want = wanted.get(kind)
        if want is None:
            if desc is not None:
                deleted.append(sid)
                if not dry_run:
                    await _delete(client, sid)
        elif desc is None:
            created.append(sid)
            if not dry_run:
                await _create(client, want)
        elif diff := differences(want.snapshot(), await snapshot_of(client, desc)):
            updated.append(sid)
            changes[sid] = diff
            if not dry_run:
                await _update(client, want)
        else:
            unchanged.append(sid)
    return SyncResult(
        cluster=spec.cluster,
        dry_run=dry_run,
        created=created,
        updated=updated,
        deleted=deleted,
        unchanged=unchanged,
        changes=changes,
    )


# ---------------------------------------------------------------- list


def _running(desc: ScheduleDescription) -> list[str]:
    return [
        r.workflow_id
        for r in desc.info.running_actions
        if isinstance(r, ScheduleActionExecutionStartWorkflow)
    ]


async def _run_status(client: Client, workflow_id: str, run_id: str) -> str | None:
    try:
        desc = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    except RPCError:
        return None
    return desc.status.name.lower() if desc.status is not None else None


async def _row(client: Client, desc: ScheduleDescription) -> ScheduleRow | None:
    parsed = parse_schedule_id(desc.id)
    if parsed is None:
        return None
    cluster, kind = parsed
    action = desc.schedule.action
    memo = dict(action.memo or {}) if isinstance(action, ScheduleActionStartWorkflow) else {}
    recent: list[RecentRun] = []
    for result in reversed(desc.info.recent_actions):
        run = result.action
        if not isinstance(run, ScheduleActionExecutionStartWorkflow):
            continue
        recent.append(
            RecentRun(
                scheduled_at=result.scheduled_at,
                started_at=result.started_at,
                workflow_id=run.workflow_id,
                run_id=run.first_execution_run_id,
                status=await _run_status(client, run.workflow_id, run.first_execution_run_id),
            )
        )
        if len(recent) == RECENT_RUNS:
            break
    info, state = desc.info, desc.schedule.state
    return ScheduleRow(
        id=desc.id,
        cluster=cluster,
        kind=kind,
        cron=await _decode(client, memo.get(MEMO_CRON), str),
        paused=state.paused,
        note=state.note or "",
        next_runs=list(info.next_action_times[:NEXT_RUNS]),
        recent=recent,
        running=_running(desc),
        actions=info.num_actions,
        skipped_overlap=info.num_actions_skipped_overlap,
        missed_catchup=info.num_actions_missed_catchup_window,
    )


async def list_schedules(client: Client, cluster: str | None) -> list[ScheduleRow]:
    """pgha's schedules of ``cluster`` (read by id: exact), or of every cluster (through the
    server's schedule list: a schedule created a moment ago may be missing). Read-only."""
    if cluster is not None:
        ids = [schedule_id(cluster, kind) for kind in ScheduleKind]
    else:
        listed = await client.list_schedules()
        ids = sorted([s.id async for s in listed if parse_schedule_id(s.id)])
    rows: list[ScheduleRow] = []
    for sid in ids:
        desc = await _describe(client, sid)
        row = await _row(client, desc) if desc is not None else None
        if row is not None:
            rows.append(row)
    order = list(ScheduleKind)
    return sorted(rows, key=lambda r: (r.cluster, order.index(r.kind)))


# ---------------------------------------------------------------- pause, unpause, trigger


def _no_schedules(cluster: str, missing: Sequence[str]) -> ScheduleNotFound:
    what = ", ".join(missing) if missing else "no pgha schedules"
    which = "does not exist" if len(missing) == 1 else "do not exist"
    head = f"cluster {cluster} has {what}" if not missing else f"schedule {what} {which}"
    return ScheduleNotFound(
        f"{head} on the Temporal server; create them from the spec with "
        f"`pgha schedule sync --cluster {cluster}` (a kind whose cron is null in "
        "backup.schedule has no schedule)"
    )


async def _existing(client: Client, cluster: str, kinds: Sequence[ScheduleKind]) -> list[str]:
    """Ids of the given kinds (all existing ones when none given), checked before any change.

    :raises ScheduleNotFound: a named kind has no schedule, or the cluster has none at all.
    """
    ids = [schedule_id(cluster, k) for k in (kinds or list(ScheduleKind))]
    found = [sid for sid in ids if await _describe(client, sid) is not None]
    missing = [sid for sid in ids if sid not in found]
    if (kinds and missing) or not found:
        raise _no_schedules(cluster, missing if kinds else [])
    return found


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


async def pause_schedules(
    client: Client, cluster: str, kinds: Sequence[ScheduleKind] = (), note: str | None = None
) -> list[str]:
    """Pause the cluster's schedules of ``kinds`` (all when empty). Idempotent; a sync keeps
    the pause and the note.

    :returns: the paused schedule ids.
    :raises ScheduleNotFound: see ``_existing``.
    """
    ids = await _existing(client, cluster, kinds)
    text = note or f"paused with `pgha schedule pause` on {_stamp()}"
    for sid in ids:
        await client.get_schedule_handle(sid).pause(note=text)
    return ids


async def unpause_schedules(
    client: Client, cluster: str, kinds: Sequence[ScheduleKind] = (), note: str | None = None
) -> list[str]:
    """Resume the cluster's schedules of ``kinds`` (all when empty). Idempotent.

    :returns: the resumed schedule ids.
    :raises ScheduleNotFound: see ``_existing``.
    """
    ids = await _existing(client, cluster, kinds)
    text = note or f"{managed_note(cluster)}; unpaused on {_stamp()}"
    for sid in ids:
        await client.get_schedule_handle(sid).unpause(note=text)
    return ids


def _runs(desc: ScheduleDescription) -> set[str]:
    """Workflow ids of every run the description knows (running and recent)."""
    recent = [a.action for a in desc.info.recent_actions]
    return set(_running(desc)) | {
        a.workflow_id for a in recent if isinstance(a, ScheduleActionExecutionStartWorkflow)
    }


async def trigger_schedule(
    client: Client, cluster: str, kind: ScheduleKind, wait_s: float = TRIGGER_WAIT_S
) -> TriggerResult:
    """Run the schedule's action now, through the schedule (so it shows in its recent runs
    and obeys its overlap policy), then wait up to ``wait_s`` to name the run it started.
    Works on a paused schedule too. Not idempotent: each call is one more run.

    :raises ScheduleNotFound: the cluster has no schedule of this kind.
    """
    sid = schedule_id(cluster, kind)
    before = await _describe(client, sid)
    if before is None:
        raise _no_schedules(cluster, [sid])
    seen, skipped = _runs(before), before.info.num_actions_skipped_overlap
    await client.get_schedule_handle(sid).trigger()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while loop.time() < deadline:
        await asyncio.sleep(0.2)
        now = await _describe(client, sid)
        if now is None:
            break
        running = _running(now)
        if new := sorted(_runs(now) - seen):
            return TriggerResult(schedule_id=sid, workflow_id=new[-1], running=running)
        if now.info.num_actions_skipped_overlap > skipped:
            return TriggerResult(schedule_id=sid, skipped=True, running=running)
    return TriggerResult(schedule_id=sid)
