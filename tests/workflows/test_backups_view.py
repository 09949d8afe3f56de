"""BackupsView reads the sets from the repository host and the last verification from the
report store; an unreadable repository is reported, never a failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner

from pgha import report_cli
from pgha.activities import reports as report_activities
from pgha.backup_models import (
    BackupRecord,
    BackupSets,
    BackupsOverview,
    BackupsOverviewInput,
    BackupType,
    VerifyReport,
)
from pgha.operations import BACKUPS, start_operation
from pgha.report_text import verify_summary
from pgha.reports import ReportKind, save_report
from pgha.spec import ClusterSpec, spec_to_yaml
from pgha.steps import HostStep
from pgha.workflows.backups_view import BackupsView

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
SET = BackupRecord(
    label="20261126-030000F",
    type=BackupType.full,
    started=T0,
    stopped=T0 + timedelta(minutes=5),
    size_bytes=2**30,
    repo_size_bytes=2**28,
)
REPORT_ACTIVITIES = [
    report_activities.latest_verification,
    report_activities.save_verification,
    report_activities.save_backup,
]

#: The hosts the fake list_sets was asked, per test (activities run in this process).
asked: list[str] = []


@activity.defn(name="backup.list_sets")
async def list_sets_ok(step: HostStep) -> BackupSets:
    asked.append(step.host)
    return BackupSets(
        stanza=step.spec.stanza,
        status="ok",
        sets=[SET],
        wal_min="000000010000000000000001",
        wal_max="000000010000000000000009",
    )


@activity.defn(name="backup.list_sets")
async def list_sets_unreadable(step: HostStep) -> BackupSets:
    asked.append(step.host)
    raise ApplicationError(
        f"host {step.host}: `pgbackrest info` exited 1: repository is not readable",
        type="PgbackrestFailed",
        non_retryable=True,
    )


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real report activities run in this process: they use this store."""
    monkeypatch.setenv("PGHA_STATE_DIR", str(tmp_path))
    asked.clear()
    return tmp_path


def stored_verification(spec: ClusterSpec, passed: bool, day: int = 0) -> VerifyReport:
    """A verification ``day`` days after T0, saved in the test's report store."""
    started = T0 + timedelta(days=day, hours=1)
    report = VerifyReport(
        cluster=spec.cluster,
        stanza=spec.stanza,
        workflow_id=f"pgha-op:{spec.cluster}",
        started_at=started,
        finished_at=started + timedelta(minutes=3),
        passed=passed,
        reason="" if passed else "pg_amcheck: corruption in app.public.t",
        target_host="backup1",
        scratch_path="/var/lib/pgha-verify",
        backup=SET,
    )
    save_report(
        ReportKind.verify_restore,
        spec.cluster,
        report.workflow_id,
        report,
        verify_summary(report),
        passed=passed,
        created_at=report.finished_at,
    )
    return report


async def run_view(
    env: WorkflowEnvironment, task_queue: str, spec: ClusterSpec, list_sets: Callable[..., Any]
) -> BackupsOverview:
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[BackupsView],
        activities=[list_sets, *REPORT_ACTIVITIES],
    ):
        handle = await start_operation(
            env.client,
            BACKUPS,
            spec.cluster,
            BackupsOverviewInput(spec=spec),
            task_queue=task_queue,
        )
        return BackupsOverview.model_validate(await handle.result())


async def test_backups_view_returns_sets_and_last_verification(
    env: WorkflowEnvironment, task_queue: str, spec: ClusterSpec
) -> None:
    stored_verification(spec, passed=True)
    last = stored_verification(spec, passed=False, day=1)
    result = await run_view(env, task_queue, spec, list_sets_ok)
    assert asked == ["backup1"]
    assert result.cluster == spec.cluster
    assert result.unreadable == ""
    assert result.sets is not None and result.sets.sets == [SET]
    assert result.sets.wal_max == "000000010000000000000009"
    assert result.last_verification == last
    assert result.verification_max_age_hours == spec.backup.verify.max_age_hours


async def test_backups_view_unreadable_repository_still_returns_last_verification(
    env: WorkflowEnvironment, task_queue: str, spec: ClusterSpec
) -> None:
    last = stored_verification(spec, passed=True)
    result = await run_view(env, task_queue, spec, list_sets_unreadable)
    assert result.sets is None
    assert result.unreadable == (
        "backup repository on backup1: host backup1: `pgbackrest info` exited 1: "
        "repository is not readable"
    )
    assert result.last_verification == last


async def test_backups_view_without_any_verification_returns_none(
    env: WorkflowEnvironment, task_queue: str, spec: ClusterSpec
) -> None:
    result = await run_view(env, task_queue, spec, list_sets_ok)
    assert result.sets is not None
    assert result.last_verification is None


async def test_backups_view_with_backups_off_asks_no_host(
    env: WorkflowEnvironment, task_queue: str, spec: ClusterSpec
) -> None:
    off = spec.model_copy(update={"backup": spec.backup.model_copy(update={"enabled": False})})
    result = await run_view(env, task_queue, off, list_sets_ok)
    assert asked == []
    assert result.sets is None and "backup.enabled is false" in result.unreadable


async def test_backups_command_prints_last_verification_and_exits_3_when_unreadable(
    env: WorkflowEnvironment,
    task_queue: str,
    spec: ClusterSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored_verification(spec, passed=False)
    spec_file = tmp_path / f"{spec.cluster}.yaml"
    spec_file.write_text(spec_to_yaml(spec))
    monkeypatch.setenv("PGHA_TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
    monkeypatch.setenv("PGHA_TASK_QUEUE", task_queue)

    @asynccontextmanager
    async def test_worker(client: Client, queue: str) -> AsyncIterator[bool]:
        # pgha.worker registers BackupsView elsewhere; this runs just what the test needs.
        activities = [list_sets_unreadable, *REPORT_ACTIVITIES]
        async with Worker(client, task_queue=queue, workflows=[BackupsView], activities=activities):
            yield True

    monkeypatch.setattr(report_cli, "in_process_worker_if_needed", test_worker)
    app = typer.Typer()
    app.command()(report_cli.backups)
    app.command("noop")(lambda: None)
    # The command runs its own event loop (asyncio.run): give it a thread of its own.
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["backups", "--cluster", str(spec_file)]
    )
    assert result.exit_code == 3, result.output
    assert "could not read the backup sets: backup repository on backup1" in result.output
    assert "last restore verification: FAILED" in result.output
    assert "reason: pg_amcheck: corruption in app.public.t" in result.output
