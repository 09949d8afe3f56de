"""Backup and VerifyRestore on the real dev server with fake activities: the runbook's
order, refusals that change nothing, retries that do not take a second backup, a failed
verification that still reports and tears down, and a cancelled one that tears down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from pgha.backup_models import (
    BackupInput,
    BackupResult,
    BackupType,
    CheckOutcome,
    VerifyReport,
    VerifyRestoreInput,
)
from pgha.operations import BACKUP, VERIFY_RESTORE, Operation, start_operation
from pgha.progress import Progress, StepState
from pgha.spec import ClusterSpec
from pgha.worker import build_worker
from pgha.workflows.backup import Backup
from pgha.workflows.verify_restore import VerifyRestore
from tests.workflows.backup_fakes import FakeCluster


class Run:
    def __init__(self, env: WorkflowEnvironment, spec: ClusterSpec, fake: FakeCluster,
                 task_queue: str) -> None:  # fmt: skip
        self.env, self.spec, self.fake, self.task_queue = env, spec, fake, task_queue

    async def start(self, op: Operation, arg: Any) -> Any:
        return await start_operation(
            self.env.client, op, self.spec.cluster, arg, task_queue=self.task_queue
        )

    async def failure(self, op: Operation, arg: Any) -> ApplicationError:
        handle = await self.start(op, arg)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        cause = err.value.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.__cause__
        assert isinstance(cause, ApplicationError), err.value
        return cause


@pytest_asyncio.fixture
async def run(env: WorkflowEnvironment, spec: ClusterSpec) -> AsyncIterator[Run]:
    fake = FakeCluster()
    task_queue = f"backup-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[Backup, VerifyRestore],
                            activities=fake.activities()):  # fmt: skip
        yield Run(env, spec, fake, task_queue)


async def test_backup_checks_primary_and_archiving_before_taking_then_expires(run: Run) -> None:
    handle = await run.start(BACKUP, BackupInput(spec=run.spec, type=BackupType.incr))
    result = BackupResult.model_validate(await handle.result())
    order = [a for a, _ in run.fake.calls]
    assert order.index("backup.check_archiving") < order.index("backup.take")
    assert order.index("backup.take") < order.index("backup.expire")
    assert result.backup.type == BackupType.incr and result.primary == "db1"
    assert run.fake.called("backup.take") == ["backup1"]
    assert run.fake.takes_known == [["20261126-010000F"]]
    assert isinstance(run.fake.saved[-1], BackupResult)
    progress = await handle.query("progress", result_type=Progress)
    assert progress.done and "incr backup" in progress.outcome


async def test_backup_without_a_running_primary_is_refused_and_takes_nothing(run: Run) -> None:
    run.fake.leader = None
    failure = await run.failure(BACKUP, BackupInput(spec=run.spec))
    assert failure.type == "NoHealthyPrimary"
    assert "has no healthy primary" in failure.message and "nothing was started" in failure.message
    assert run.fake.called("backup.take") == [] and run.fake.called("backup.check_archiving") == []


async def test_backup_with_broken_archiving_is_refused_and_takes_nothing(run: Run) -> None:
    run.fake.archiving_ok = False
    failure = await run.failure(BACKUP, BackupInput(spec=run.spec))
    assert failure.type == "ArchivingBroken"
    assert run.fake.called("backup.take") == []


async def test_backup_retried_after_a_failure_takes_one_set(run: Run) -> None:
    run.fake.take_failures = 1
    handle = await run.start(BACKUP, BackupInput(spec=run.spec))
    await handle.result()
    # Both attempts got the labels from before the workflow began: the second can tell
    # a set the first took from an old one.
    assert run.fake.takes_known == [["20261126-010000F"], ["20261126-010000F"]]
    assert len(run.fake.sets) == 2


async def test_verify_restore_runs_the_runbook_and_reports(run: Run) -> None:
    handle = await run.start(VERIFY_RESTORE, VerifyRestoreInput(spec=run.spec))
    report = VerifyReport.model_validate(await handle.result())
    order = [a for a, _ in run.fake.calls]
    assert order == [
        "status.patroni", "verify.write_sentinel", "backup.list_sets",
        "verify.check_repository", "verify.restore", "verify.prove", "verify.teardown",
        "reports.save_verification",
    ]  # fmt: skip
    assert run.fake.called("verify.check_repository") == ["backup1"]  # the repository host
    assert report.passed and report.backup is not None
    assert report.backup.label == "20261126-010000F"
    assert report.sentinel is not None and report.sentinel.value.startswith(run.spec.cluster)
    assert {"sentinel", "verify", "restore", "recovery", "checks", "teardown", "total"} <= set(
        report.timings
    )
    assert run.fake.saved == [report]


async def test_failed_check_fails_red_with_the_reason_after_teardown_and_report(run: Run) -> None:
    run.fake.checks[1] = CheckOutcome(
        name="pg_amcheck", passed=False, detail='heap table "app.public.t", block 3: bad'
    )
    failure = await run.failure(VERIFY_RESTORE, VerifyRestoreInput(spec=run.spec))
    assert failure.type == "RestoreVerificationFailed"
    assert 'pg_amcheck: heap table "app.public.t", block 3: bad' in failure.message
    assert run.fake.called("verify.teardown") and run.fake.saved
    report = run.fake.saved[-1]
    assert isinstance(report, VerifyReport) and not report.passed
    assert report.reason.startswith("pg_amcheck")


async def test_damaged_repository_stops_before_any_restore(run: Run) -> None:
    run.fake.repository_problems = ["WAL 000000010000000000000007 is missing from the repository"]
    failure = await run.failure(VERIFY_RESTORE, VerifyRestoreInput(spec=run.spec))
    assert "000000010000000000000007 is missing" in failure.message
    assert run.fake.called("verify.restore") == []
    assert run.fake.called("verify.teardown")


async def test_unknown_set_is_refused_plainly(run: Run) -> None:
    failure = await run.failure(
        VERIFY_RESTORE, VerifyRestoreInput(spec=run.spec, set_label="20990101-000000F")
    )
    assert failure.type == "InvalidInput"
    assert "no backup set 20990101-000000F" in failure.message


async def test_cancelled_verification_still_tears_down_and_reports(run: Run) -> None:
    run.fake.restore_hangs = True
    handle = await run.start(VERIFY_RESTORE, VerifyRestoreInput(spec=run.spec))
    await asyncio.wait_for(run.fake.restore_started.wait(), 20)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    run.fake.restore_hangs = False
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert run.fake.called("verify.teardown") == ["backup1"]
    report = run.fake.saved[-1]
    assert isinstance(report, VerifyReport) and "cancelled" in report.reason
    progress = await handle.query("progress", result_type=Progress)
    (teardown,) = [s for s in progress.steps if s.key == "teardown"]
    assert teardown.state == StepState.ok
