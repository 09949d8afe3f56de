"""PostFailover on the real dev server with fake activities and fake Backup/VerifyRestore
children: the old primary rejoined (or reinitialised only when allowed), then the new
primary's archiver released from older timelines' segments, then an incremental backup on
the new timeline, then its restore verification."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment

from pgha.activities.converge import permanent
from pgha.backup_models import (
    BackupInput,
    BackupRecord,
    BackupResult,
    VerifyReport,
    VerifyRestoreInput,
)
from pgha.event_models import PostFailoverInput, PostFailoverReport
from pgha.operations import POST_FAILOVER, start_operation
from pgha.spec import ClusterSpec
from pgha.status_models import Member, PatroniStatus
from pgha.steps import HostStep, StepResult
from pgha.worker import build_worker
from pgha.workflows.post_failover import PostFailover

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CALLS: list[str] = []


@workflow.defn(name="Backup", sandboxed=False)
class FakeBackup:
    @workflow.run
    async def run(self, inp: BackupInput) -> BackupResult:
        CALLS.append(f"backup {inp.type.value}")
        record = BackupRecord(label="20261203-120000F_20261203-121500I", type=inp.type,
                              started=T0, stopped=T0, size_bytes=1, repo_size_bytes=1,
                              wal_start="000000030000000000000051")  # fmt: skip
        return BackupResult(cluster=inp.spec.cluster, stanza="s", backup=record, check_s=1.2,
                            primary="db2")  # fmt: skip


@workflow.defn(name="VerifyRestore", sandboxed=False)
class FakeVerify:
    @workflow.run
    async def run(self, inp: VerifyRestoreInput) -> VerifyReport:
        CALLS.append(f"verify {inp.set_label}")
        return VerifyReport(cluster=inp.spec.cluster, stanza="s",
                            workflow_id=workflow.info().workflow_id, started_at=T0,
                            finished_at=T0, passed=True, target_host="backup1",
                            scratch_path="/var/lib/pgha-verify")  # fmt: skip


def fakes(rejoins: bool, reinit_works: bool = True) -> list[Callable[..., Any]]:
    state = {"reinitialised": False}

    @activity.defn(name="drill.wait_healthy")
    async def whole(step: HostStep) -> PatroniStatus:
        CALLS.append("whole?")
        if not (rejoins or state["reinitialised"]):
            raise permanent("db1 is start failed (diverged)", "NotHealed")
        return PatroniStatus(source="db2", members=[
            Member(name=m, host=m, role="leader" if m == "db2" else "replica", state="running",
                   timeline=3, lag_bytes=None if m == "db2" else 0)
            for m in ("db1", "db2", "db3")])  # fmt: skip

    @activity.defn(name="drill.reinit_diverged")
    async def reinit(step: HostStep) -> StepResult:
        CALLS.append("reinit")
        state["reinitialised"] = reinit_works
        return StepResult(host=step.host, changed=True, summary="reinitialised db1")

    @activity.defn(name="archiving.release_stale_ready")
    async def release(step: HostStep) -> StepResult:
        CALLS.append(f"release {step.host}")
        return StepResult(host=step.host, changed=True,
                          summary="marked archived 00000002000000000000001C (...)")  # fmt: skip

    return [whole, reinit, release]


async def run(env: WorkflowEnvironment, spec: ClusterSpec, acts: list[Callable[..., Any]],
              **kw: Any) -> PostFailoverReport:  # fmt: skip
    CALLS.clear()
    queue = f"post-failover-{uuid.uuid4()}"
    async with build_worker(env.client, queue, workflows=[PostFailover, FakeBackup, FakeVerify],
                            activities=acts):  # fmt: skip
        inp = PostFailoverInput(spec=spec, old_leader="db1", new_leader="db2",
                                rejoin_timeout_s=5, **kw)  # fmt: skip
        handle = await start_operation(env.client, POST_FAILOVER, spec.cluster, inp,
                                       task_queue=queue)  # fmt: skip
        return PostFailoverReport.model_validate(await handle.result())


async def test_rejoined_then_a_backup_on_the_new_timeline_then_its_verification(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    report = await run(env, spec, fakes(rejoins=True))
    assert CALLS == ["whole?", "release db2", "backup incr",
                     "verify 20261203-120000F_20261203-121500I"]  # fmt: skip
    assert report.old_primary == "rejoined" and report.new_leader == "db2"
    assert report.archiver.startswith("marked archived 00000002000000000000001C")
    assert report.backup_timeline == 3 and report.archiving_check_s == 1.2
    assert report.verified is True


async def test_an_old_primary_that_does_not_rejoin_is_reinitialised_only_when_allowed(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    kept = await run(env, spec, fakes(rejoins=False))  # the spec's default: off
    assert "reinit" not in CALLS and kept.old_primary.startswith("did not rejoin")
    assert "guardian.reinit_old_primary is off" in kept.old_primary
    assert "backup incr" in CALLS  # the backup on the new timeline matters either way

    reinitialised = await run(env, spec, fakes(rejoins=False), reinit=True)
    assert CALLS[:3] == ["whole?", "reinit", "whole?"]
    assert reinitialised.old_primary == "reinitialised"


async def test_a_failed_reinit_is_reported_and_the_backup_still_taken(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    report = await run(env, spec, fakes(rejoins=False, reinit_works=False), reinit=True)
    assert report.old_primary.startswith("did not rejoin, and reinitialising failed")
    assert report.backup_label and report.verified is True
