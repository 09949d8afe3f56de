"""The Reconfigure workflow on the real dev server with fake members: a dry run changes
nothing; a reload-only change restarts nothing; a raised restart setting restarts replicas
first and the primary by switchover; a lowered standby minimum restarts the primary first,
in place; a member that does not come back stops it there."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from pgha.operations import RECONFIGURE, start_operation
from pgha.reconfigure_models import (
    FileChange,
    ReconfigureInput,
    ReconfigurePlan,
    ReconfigureReport,
    SettingChange,
)
from pgha.rolling_models import Decision, DecisionAction
from pgha.spec import ClusterSpec
from pgha.worker import build_worker
from pgha.workflows.reconfigure import Reconfigure
from tests.workflows.reconfigure_fakes import MEMBERS, FakeReconfigureCluster

WORK_MEM = ReconfigurePlan(
    leader="db1",
    changes=[SettingChange(scope=m, key="postgresql.parameters.work_mem", old=None, new="8MB")
             for m in MEMBERS],
    files=[FileChange(host=m, path="/etc/patroni/config.yml", service="patroni")
           for m in MEMBERS],
)  # fmt: skip


def max_connections(old: str, new: str) -> ReconfigurePlan:
    lowered = ["max_connections"] if int(new) < int(old) else []
    change = SettingChange(scope="dcs", key="postgresql.parameters.max_connections", old=old,
                           new=new, restart=True)  # fmt: skip
    return ReconfigurePlan(leader="db1", changes=[change], lowered=lowered)


@contextlib.asynccontextmanager
async def reconfigure(
    env: WorkflowEnvironment, spec: ClusterSpec, fake: FakeReconfigureCluster, dry_run: bool = False
) -> AsyncIterator[object]:
    task_queue = f"reconf-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[Reconfigure],
                            activities=fake.activities()):  # fmt: skip
        yield await start_operation(env.client, RECONFIGURE, spec.cluster,
                                    ReconfigureInput(spec=spec, dry_run=dry_run),
                                    task_queue=task_queue)  # fmt: skip


async def test_a_dry_run_shows_the_plan_and_changes_nothing(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeReconfigureCluster(max_connections("100", "120"))
    async with reconfigure(env, spec, fake, dry_run=True) as handle:
        report = ReconfigureReport.model_validate(await handle.result())  # type: ignore[attr-defined]
    assert report.dry_run and report.passed and report.plan == fake.plan
    assert fake.steps() == []


async def test_a_reload_only_change_restarts_nothing(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeReconfigureCluster(WORK_MEM)
    async with reconfigure(env, spec, fake) as handle:
        report = ReconfigureReport.model_validate(await handle.result())  # type: ignore[attr-defined]
    assert report.passed and report.restarted == [] and report.write_down_s is None
    assert fake.steps() == [("patroni.ensure_config", m) for m in MEMBERS]


async def test_raising_a_restart_setting_goes_replicas_first_then_switchover(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeReconfigureCluster(max_connections("100", "120"))
    async with reconfigure(env, spec, fake) as handle:
        report = ReconfigureReport.model_validate(await handle.result())  # type: ignore[attr-defined]
    assert report.passed, report.reason

    def each(h: str) -> list[tuple[str, str]]:
        return [("drain", h), ("restart", h), ("undrain", h)]

    assert fake.steps() == [("dcs", "db1"), *each("db3"), *each("db2"), ("switchover", "db1"),
                            *each("db1")]  # fmt: skip
    assert report.restarted == ["db3", "db2", "db1"] and report.switchover == "db1 -> db2"
    assert report.write_down_s is not None and report.write_down_s > 0 and report.lost == 0


async def test_lowering_a_standby_minimum_restarts_the_primary_first_in_place(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeReconfigureCluster(max_connections("120", "100"))
    async with reconfigure(env, spec, fake) as handle:
        report = ReconfigureReport.model_validate(await handle.result())  # type: ignore[attr-defined]
    assert report.passed, report.reason
    assert fake.steps()[:2] == [("dcs", "db1"), ("restart", "db1")]  # not drained: it leads
    assert ("switchover", "db1") not in fake.steps()
    assert report.restarted == ["db1", "db3", "db2"]


async def test_a_member_that_does_not_come_back_stops_the_restarts_there(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeReconfigureCluster(max_connections("100", "120"))
    fake.broken = {"db3"}
    async with reconfigure(env, spec, fake) as handle:
        await asyncio.wait_for(fake.blocked.wait(), 30)
        await asyncio.sleep(0.5)
        with pytest.raises(WorkflowUpdateFailedError):  # no rollback for a reconfigure
            await handle.execute_update("decide", Decision(action=DecisionAction.rollback),  # type: ignore[attr-defined]
                                        result_type=str)  # fmt: skip
        await handle.execute_update("decide", Decision(action=DecisionAction.abort),  # type: ignore[attr-defined]
                                    result_type=str)  # fmt: skip
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()  # type: ignore[attr-defined]
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and "stopped at db3" in str(cause)
    assert [h for a, h in fake.steps() if a == "restart"] == ["db3"]  # nothing after it


async def test_a_cancel_during_a_restart_undrains_the_member_and_keeps_the_report(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeReconfigureCluster(max_connections("100", "120"))
    fake.slow_restart_on = "db3"
    async with reconfigure(env, spec, fake) as handle:
        await asyncio.wait_for(fake.restarting.wait(), 30)
        await handle.cancel()  # type: ignore[attr-defined]
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()  # type: ignore[attr-defined]
    assert isinstance(err.value.cause, CancelledError), err.value
    assert ("undrain", "db3") in fake.steps() and fake.steps()[-1] == ("undrain", "db3")
    assert [h for a, h in fake.steps() if a == "restart"] == ["db3"]  # nothing after it
    assert fake.saved[-1].reason.startswith("cancelled by an operator; db3 was undrained")


async def test_every_reconfigure_keeps_its_report_a_dry_run_too(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeReconfigureCluster(WORK_MEM)
    async with reconfigure(env, spec, fake, dry_run=True) as handle:
        report = ReconfigureReport.model_validate(await handle.result())  # type: ignore[attr-defined]
    assert fake.saved == [report] and report.dry_run
