"""Schedules on a real dev server: sync creates, changes and removes them as the spec changes,
keeps an operator's pause, and a scheduled run takes the cluster's lock through a child,
waits while another operation holds it, and fails red with the child's reason."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    ScheduleSpec,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pgha.activities.cluster_lock import describe_lock
from pgha.backup_models import (
    BackupInput,
    BackupType,
    ScheduledRunInput,
    ScheduledRunResult,
    ScheduleKind,
    VerifyRestoreInput,
)
from pgha.errors import SpecError
from pgha.operations import Operation, lock_id, start_operation
from pgha.progress import Progress
from pgha.schedule_models import CATCHUP_WINDOW, MEMO_CRON, run_spec, schedule_id
from pgha.schedules import (
    ScheduleNotFound,
    list_schedules,
    pause_schedules,
    sync_schedules,
    trigger_schedule,
    unpause_schedules,
)
from pgha.search_attributes import CLUSTER_ATTR, OPERATION_ATTR
from pgha.spec import ClusterSpec, parse_spec, spec_to_yaml
from pgha.workflows.scheduled import ScheduledRun
from tests.specs import reference_data
from tests.workflows.fakes import HoldCluster
from tests.workflows.schedule_fakes import (
    ARCHIVING_BROKEN,
    FailingBackup,
    FakeBackup,
    FakeVerifyRestore,
)

ROOT = Path(__file__).parents[2]
HOLD = Operation("hold", "HoldCluster", mutating=True)
DEFAULT_KINDS = [ScheduleKind.full, ScheduleKind.diff, ScheduleKind.verify_restore]


def make_spec(cluster: str, **backup: Any) -> ClusterSpec:
    data = reference_data(cluster)
    data["backup"] = backup
    return parse_spec(data, "test")


@pytest.fixture
def cluster() -> str:
    return f"sch-{uuid.uuid4().hex[:8]}"


async def delete_schedules(env: WorkflowEnvironment, *clusters: str) -> None:
    for name in clusters:
        for kind in ScheduleKind:
            try:
                await env.client.get_schedule_handle(schedule_id(name, kind)).delete()
            except RPCError as err:
                assert err.status == RPCStatusCode.NOT_FOUND


@pytest_asyncio.fixture
async def cleanup(env: WorkflowEnvironment, cluster: str) -> AsyncIterator[list[str]]:
    """Clusters (the test's own first) whose schedules are deleted when the test ends."""
    clusters = [cluster]
    yield clusters
    await delete_schedules(env, *clusters)


@asynccontextmanager
async def worker(env: WorkflowEnvironment, task_queue: str, *fakes: type) -> AsyncIterator[None]:
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[ScheduledRun, HoldCluster, *fakes],
        activities=[describe_lock],
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
    ):
        yield


async def eventually(check: Callable[[], Any], within: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.2)


async def start_run(
    env: WorkflowEnvironment, spec: ClusterSpec, kind: ScheduleKind, task_queue: str,
    busy_wait_s: float,
) -> WorkflowHandle[Any, ScheduledRunResult]:  # fmt: skip
    """A ScheduledRun as a schedule would start it, with a short busy wait."""
    return await env.client.start_workflow(
        "ScheduledRun",
        ScheduledRunInput(spec=run_spec(spec), kind=kind, busy_wait_s=busy_wait_s),
        id=f"pgha-schedule:{spec.cluster}:{kind.value}-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
        result_type=ScheduledRunResult,
    )


# ---------------------------------------------------------------- sync


async def test_sync_creates_one_schedule_per_cron(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], task_queue: str
) -> None:
    spec = make_spec(cluster)
    result = await sync_schedules(env.client, spec, task_queue)
    ids = [schedule_id(cluster, k) for k in DEFAULT_KINDS]
    assert (result.created, result.updated, result.deleted) == (ids, [], [])
    for kind in DEFAULT_KINDS:
        desc = await env.client.get_schedule_handle(schedule_id(cluster, kind)).describe()
        action = desc.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "ScheduledRun"
        assert action.id == f"pgha-schedule:{cluster}:{kind.value}"
        assert action.task_queue == task_queue
        assert action.typed_search_attributes.get(CLUSTER_ATTR) == cluster
        assert action.typed_search_attributes.get(OPERATION_ATTR) == f"scheduled-{kind.value}"
        [run_input] = await env.client.data_converter.decode(list(action.args), [ScheduledRunInput])
        assert run_input == ScheduledRunInput(spec=run_spec(spec), kind=kind)
        [cron] = await env.client.data_converter.decode([action.memo[MEMO_CRON]], [str])  # type: ignore[index]
        assert cron == getattr(spec.backup.schedule, kind.name)
        assert desc.schedule.spec.calendars  # the server's translation of the cron
        policy = desc.schedule.policy
        assert policy.overlap == ScheduleOverlapPolicy.SKIP
        assert policy.catchup_window == CATCHUP_WINDOW
        assert policy.pause_on_failure is False
        assert not desc.schedule.state.paused
        assert "pgha schedule sync" in (desc.schedule.state.note or "")
        assert desc.typed_search_attributes.get(CLUSTER_ATTR) == cluster
    full = await env.client.get_schedule_handle(schedule_id(cluster, ScheduleKind.full)).describe()
    # "0 1 * * 0": Sundays at 01:00 UTC.
    assert all(t.hour == 1 and t.minute == 0 and t.weekday() == 6
               for t in full.info.next_action_times)  # fmt: skip


async def test_second_sync_is_all_unchanged_and_writes_nothing(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], task_queue: str
) -> None:
    spec = make_spec(cluster)
    await sync_schedules(env.client, spec, task_queue)
    before = await updated_at(env, cluster)
    again = await sync_schedules(env.client, spec, task_queue)
    assert again.unchanged == [schedule_id(cluster, k) for k in DEFAULT_KINDS]
    assert (again.created, again.updated, again.deleted) == ([], [], [])
    assert await updated_at(env, cluster) == before


async def updated_at(env: WorkflowEnvironment, cluster: str) -> dict[str, datetime | None]:
    out: dict[str, datetime | None] = {}
    for kind in DEFAULT_KINDS:
        sid = schedule_id(cluster, kind)
        try:
            out[sid] = (await env.client.get_schedule_handle(sid).describe()).info.last_updated_at
        except RPCError:
            pass
    return out


async def test_changed_cron_updates_exactly_that_schedule(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], task_queue: str
) -> None:
    await sync_schedules(env.client, make_spec(cluster), task_queue)
    before = await updated_at(env, cluster)
    diff_id = schedule_id(cluster, ScheduleKind.diff)
    changed = make_spec(cluster, schedule={"diff": "30 2 * * 1-6"})
    result = await sync_schedules(env.client, changed, task_queue)
    assert result.updated == [diff_id]
    assert result.changes == {diff_id: ["cron"]}
    assert (result.created, result.deleted) == ([], [])
    after = await updated_at(env, cluster)
    assert [sid for sid in after if after[sid] != before[sid]] == [diff_id]
    desc = await env.client.get_schedule_handle(diff_id).describe()
    assert {(t.hour, t.minute) for t in desc.info.next_action_times} == {(2, 30)}
    again = await sync_schedules(env.client, changed, task_queue)
    assert len(again.unchanged) == 3


async def test_null_cron_deletes_schedule_and_disabled_backup_deletes_all(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], task_queue: str
) -> None:
    other = f"{cluster}-b"
    cleanup.append(other)
    await sync_schedules(env.client, make_spec(cluster), task_queue)
    await sync_schedules(env.client, make_spec(other), task_queue)
    # A schedule that is not pgha's, whose id only starts like one.
    foreign = f"pgha:{cluster}-x"
    await env.client.create_schedule(
        foreign,
        Schedule(
            action=ScheduleActionStartWorkflow("Other", id=f"other-{cluster}", task_queue="x"),
            spec=ScheduleSpec(cron_expressions=["0 3 * * *"]),
        ),
    )
    try:
        verify_id = schedule_id(cluster, ScheduleKind.verify_restore)
        result = await sync_schedules(
            env.client, make_spec(cluster, schedule={"verify_restore": None}), task_queue
        )
        assert result.deleted == [verify_id]
        assert len(result.unchanged) == 2
        with pytest.raises(RPCError) as gone:
            await env.client.get_schedule_handle(verify_id).describe()
        assert gone.value.status == RPCStatusCode.NOT_FOUND

        off = await sync_schedules(env.client, make_spec(cluster, enabled=False), task_queue)
        assert off.deleted == [schedule_id(cluster, k) for k in DEFAULT_KINDS[:2]]
        assert await list_schedules(env.client, cluster) == []
        # The other cluster's schedules and the foreign one are untouched.
        assert [r.kind for r in await list_schedules(env.client, other)] == DEFAULT_KINDS
        await env.client.get_schedule_handle(foreign).describe()
    finally:
        await env.client.get_schedule_handle(foreign).delete()


async def test_cron_the_server_refuses_names_the_spec_field(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], task_queue: str
) -> None:
    spec = make_spec(cluster, schedule={"full": "61 1 * * *"})  # the spec's pattern allows it
    with pytest.raises(SpecError) as caught:
        await sync_schedules(env.client, spec, task_queue)
    message = str(caught.value)
    assert "backup.schedule.full: the Temporal server refuses the cron '61 1 * * *'" in message
    assert "Minute is not in range" in message


async def test_dry_run_reports_and_changes_nothing(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], task_queue: str
) -> None:
    result = await sync_schedules(env.client, make_spec(cluster), task_queue, dry_run=True)
    assert result.dry_run and len(result.created) == 3
    assert await list_schedules(env.client, cluster) == []


# ---------------------------------------------------------------- pause, list


async def test_pause_survives_a_sync_that_updates_the_schedule(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], task_queue: str
) -> None:
    await sync_schedules(env.client, make_spec(cluster), task_queue)
    full_id = schedule_id(cluster, ScheduleKind.full)
    paused = await pause_schedules(env.client, cluster, [ScheduleKind.full], "restore drill")
    assert paused == [full_id]
    result = await sync_schedules(env.client, make_spec(cluster, schedule={"full": "0 2 * * 0"}),
                                  task_queue)  # fmt: skip
    assert result.updated == [full_id]
    rows = {r.kind: r for r in await list_schedules(env.client, cluster)}
    assert rows[ScheduleKind.full].paused and rows[ScheduleKind.full].note == "restore drill"
    assert rows[ScheduleKind.full].cron == "0 2 * * 0"
    assert not rows[ScheduleKind.diff].paused

    assert await unpause_schedules(env.client, cluster) == [
        schedule_id(cluster, k) for k in DEFAULT_KINDS
    ]
    rows = {r.kind: r for r in await list_schedules(env.client, cluster)}
    assert not any(r.paused for r in rows.values())


async def test_pause_of_missing_schedule_says_to_sync(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], task_queue: str
) -> None:
    with pytest.raises(ScheduleNotFound) as none:
        await pause_schedules(env.client, cluster)
    assert f"cluster {cluster} has no pgha schedules" in str(none.value)
    await sync_schedules(env.client, make_spec(cluster), task_queue)
    with pytest.raises(ScheduleNotFound) as caught:
        await pause_schedules(env.client, cluster, [ScheduleKind.incr, ScheduleKind.full])
    assert f"schedule pgha:{cluster}:incr does not exist" in str(caught.value)
    assert f"`pgha schedule sync --cluster {cluster}`" in str(caught.value)
    # Checked before any change: full was not paused.
    assert not any(r.paused for r in await list_schedules(env.client, cluster))
    with pytest.raises(ScheduleNotFound):
        await trigger_schedule(env.client, cluster, ScheduleKind.incr)


async def test_list_shows_crons_and_next_runs(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], task_queue: str
) -> None:
    spec = make_spec(cluster)
    await sync_schedules(env.client, spec, task_queue)
    rows = await list_schedules(env.client, cluster)
    now = datetime.now(UTC)
    assert [(r.id, r.kind, r.cluster) for r in rows] == [
        (schedule_id(cluster, k), k, cluster) for k in DEFAULT_KINDS
    ]
    for r in rows:
        assert r.cron == getattr(spec.backup.schedule, r.kind.name)
        assert len(r.next_runs) == 3 and all(t > now for t in r.next_runs)
        assert r.recent == [] and not r.paused

    async def listed() -> bool:
        every = {r.id for r in await list_schedules(env.client, None)}
        return {r.id for r in rows} <= every

    assert await eventually(listed)  # the server's list is eventually consistent


# ---------------------------------------------------------------- scheduled runs


async def test_trigger_runs_operation_as_child_at_lock_id(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], task_queue: str
) -> None:
    spec = make_spec(cluster)
    await sync_schedules(env.client, spec, task_queue)
    async with worker(env, task_queue, FakeBackup, FakeVerifyRestore):
        trig = await trigger_schedule(env.client, cluster, ScheduleKind.full)
        assert trig.workflow_id and trig.workflow_id.startswith(f"pgha-schedule:{cluster}:full-")
        run = env.client.get_workflow_handle(trig.workflow_id, result_type=ScheduledRunResult)
        result = await asyncio.wait_for(run.result(), 30)
        assert result.workflow_id == lock_id(cluster) and result.kind == ScheduleKind.full
        child = env.client.get_workflow_handle(lock_id(cluster), run_id=result.run_id,
                                               result_type=BackupInput)  # fmt: skip
        got = await child.result()
        assert got == BackupInput(spec=run_spec(spec), type=BackupType.full)
        child_desc = await child.describe()
        assert child_desc.workflow_type == "Backup"
        assert child_desc.typed_search_attributes.get(OPERATION_ATTR) == "backup"
        assert child_desc.typed_search_attributes.get(CLUSTER_ATTR) == cluster
        parent = child_desc.raw_description.workflow_execution_info.parent_execution
        assert parent.workflow_id == trig.workflow_id
        run_desc = await run.describe()
        assert run_desc.typed_search_attributes.get(OPERATION_ATTR) == "scheduled-full"

        trig = await trigger_schedule(env.client, cluster, ScheduleKind.verify_restore)
        assert trig.workflow_id
        result = await asyncio.wait_for(
            env.client.get_workflow_handle(trig.workflow_id, result_type=ScheduledRunResult)
            .result(), 30)  # fmt: skip
        verify = env.client.get_workflow_handle(lock_id(cluster), run_id=result.run_id,
                                                result_type=VerifyRestoreInput)  # fmt: skip
        assert await verify.result() == VerifyRestoreInput(spec=run_spec(spec))
        assert (await verify.describe()).typed_search_attributes.get(OPERATION_ATTR) == (
            "verify-restore"
        )

    rows = {r.kind: r for r in await list_schedules(env.client, cluster)}
    [last_full] = rows[ScheduleKind.full].recent
    assert last_full.status == "completed" and last_full.workflow_id.startswith("pgha-schedule:")


async def failed_child_starts(handle: WorkflowHandle[Any, Any]) -> int:
    return sum(
        [
            e.HasField("start_child_workflow_execution_failed_event_attributes")
            async for e in handle.fetch_history_events()
        ]
    )


async def test_busy_cluster_run_waits_then_runs_child_when_holder_ends(
    env: WorkflowEnvironment, cluster: str, task_queue: str
) -> None:
    spec = make_spec(cluster)
    async with worker(env, task_queue, FakeBackup):
        holder = await start_operation(env.client, HOLD, cluster, cluster, task_queue=task_queue)
        run = await start_run(env, spec, ScheduleKind.diff, task_queue, busy_wait_s=20)

        async def waiting() -> str:
            try:
                progress = await run.query("progress", result_type=Progress)
            except Exception:
                return ""
            detail = progress.step("lock").detail
            return detail if "holds the cluster" in detail else ""

        detail = await eventually(waiting)
        assert detail.startswith(f"hold (workflow pgha-op:{cluster}, running since")
        await holder.signal("finish")
        result = await asyncio.wait_for(run.result(), 30)
    assert result.workflow_id == lock_id(cluster)
    child = env.client.get_workflow_handle(lock_id(cluster), run_id=result.run_id,
                                           result_type=BackupInput)  # fmt: skip
    assert (await child.result()).type == BackupType.diff
    assert await failed_child_starts(run) >= 1


async def test_busy_cluster_run_gives_up_with_cluster_busy(
    env: WorkflowEnvironment, cluster: str, task_queue: str
) -> None:
    spec = make_spec(cluster)
    async with worker(env, task_queue, FakeBackup):
        holder = await start_operation(env.client, HOLD, cluster, cluster, task_queue=task_queue)
        loop = asyncio.get_running_loop()
        started = loop.time()
        run = await start_run(env, spec, ScheduleKind.full, task_queue, busy_wait_s=2)
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(run.result(), 30)
        waited = loop.time() - started
        cause = caught.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "ClusterBusy" and cause.non_retryable
        assert cause.message.startswith(
            f"cluster {cluster} is busy: hold (workflow pgha-op:{cluster}, running since "
        )
        assert "the scheduled full backup waited 2 s for it and gave up" in cause.message
        assert f"`pgha watch pgha-op:{cluster}`" in cause.message
        assert f"`pgha schedule trigger --cluster {cluster} full`" in cause.message
        assert 2 <= waited < 15
        assert await failed_child_starts(run) >= 2
        # The holder was never disturbed.
        assert (await holder.describe()).status == WorkflowExecutionStatus.RUNNING
        await holder.signal("finish")
        assert await holder.result() == cluster


async def test_failing_child_fails_the_scheduled_run_with_its_reason(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], task_queue: str
) -> None:
    await sync_schedules(env.client, make_spec(cluster), task_queue)
    async with worker(env, task_queue, FailingBackup):
        trig = await trigger_schedule(env.client, cluster, ScheduleKind.full)
        assert trig.workflow_id
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(env.client.get_workflow_handle(trig.workflow_id).result(), 30)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ArchivingBroken"
    assert cause.message == (
        f"scheduled full backup of cluster {cluster}: backup (workflow pgha-op:{cluster}) "
        f"failed: {ARCHIVING_BROKEN}"
    )
    rows = {r.kind: r for r in await list_schedules(env.client, cluster)}
    assert rows[ScheduleKind.full].recent[0].status == "failed"
    # pause_on_failure is off: a failed backup does not silence the next one.
    assert not rows[ScheduleKind.full].paused


# ---------------------------------------------------------------- the CLI


async def pgha_schedule(
    env: WorkflowEnvironment, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PGHA_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
                   PGHA_STATE_DIR=str(tmp_path / "state"), PGHA_TASK_QUEUE="cli-test")  # fmt: skip
    # Through pgha's own entry point, as a user runs it: it exits without interpreter
    # finalization, which the Temporal SDK's threads can abort (sdk-python issue #300).
    code = "from pgha.cli import main; main()"
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", code, "schedule", *args], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_cli_sync_list_and_error_without_traceback(
    env: WorkflowEnvironment, cluster: str, cleanup: list[str], tmp_path: Path
) -> None:
    path = tmp_path / f"{cluster}.yaml"
    path.write_text(spec_to_yaml(make_spec(cluster)))
    dry = await pgha_schedule(env, tmp_path, "sync", "--cluster", str(path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"pgha:{cluster}:full" in dry.stdout and "would create" in dry.stdout
    assert await list_schedules(env.client, cluster) == []

    done = await pgha_schedule(env, tmp_path, "sync", "--cluster", str(path))
    assert done.returncode == 0, done.stderr
    assert "created" in done.stdout
    listed = await pgha_schedule(env, tmp_path, "list", "--cluster", cluster, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["kind"] for r in rows] == ["full", "diff", "verify-restore"]
    assert all(r["next_runs"] and r["paused"] is False for r in rows)

    bad = await pgha_schedule(env, tmp_path, "pause", "--cluster", cluster, "incr")
    assert bad.returncode == 1
    assert f"pgha schedule sync --cluster {cluster}" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout
