"""The Upgrade workflow on the real dev server with fake members: one member at a time,
the candidate last, one switchover; a member that does not come back stops the upgrade
there, touches nothing else and waits for an operator (resume, rollback, abort)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from pgha.operations import UPGRADE, start_operation
from pgha.rolling_models import (
    Blocked,
    Decision,
    DecisionAction,
    UpgradeInput,
    UpgradeReport,
)
from pgha.spec import ClusterSpec
from pgha.worker import build_worker
from pgha.workflows.upgrade import Upgrade
from tests.workflows.upgrade_fakes import CLIENT, NEW, OLD, SERVER, FakeUpgradeCluster

Handle = WorkflowHandle[Upgrade, UpgradeReport]


class Run:
    def __init__(self, env: WorkflowEnvironment, spec: ClusterSpec, fake: FakeUpgradeCluster,
                 task_queue: str) -> None:  # fmt: skip
        self.env, self.spec, self.fake, self.task_queue = env, spec, fake, task_queue

    async def start(self, version: str = "15.20") -> Handle:
        inp = UpgradeInput(spec=self.spec, packages={SERVER: version, CLIENT: version})
        return await start_operation(self.env.client, UPGRADE, self.spec.cluster, inp,
                                     task_queue=self.task_queue)  # fmt: skip

    async def stopped(self, handle: Handle) -> ApplicationError:
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        cause = err.value.cause
        assert isinstance(cause, ApplicationError), err.value
        return cause

    async def blocked(self, handle: Handle) -> Blocked:
        await asyncio.wait_for(self.fake.blocked.wait(), 30)
        for _ in range(100):
            b = await handle.query("blocked", result_type=Blocked | None)  # type: ignore[arg-type]
            if b is not None:
                return b  # type: ignore[no-any-return]
            await asyncio.sleep(0.1)
        raise AssertionError("the upgrade never said where it stopped")


@contextlib.asynccontextmanager
async def upgrades_on(
    env: WorkflowEnvironment, spec: ClusterSpec, fake: FakeUpgradeCluster
) -> AsyncIterator[Run]:
    task_queue = f"upgrade-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[Upgrade],
                            activities=fake.activities()):  # fmt: skip
        yield Run(env, spec, fake, task_queue)


@pytest_asyncio.fixture
async def run(env: WorkflowEnvironment, spec: ClusterSpec) -> AsyncIterator[Run]:
    async with upgrades_on(env, spec, FakeUpgradeCluster()) as r:
        yield r


def member_steps(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(a, h) for a, h in calls if a in ("drain", "install", "restart", "undrain",
                                               "switchover")]  # fmt: skip


async def test_replicas_first_the_candidate_last_one_switchover_then_the_old_primary(
    run: Run,
) -> None:
    report = UpgradeReport.model_validate(await (await run.start()).result())
    assert report.passed, report.reason
    each = ["drain", "install", "restart", "undrain"]
    assert member_steps(run.fake.calls) == [
        *[(a, "db3") for a in each], *[(a, "db2") for a in each],
        ("switchover", "db1"), *[(a, "db1") for a in each],
    ]  # fmt: skip
    assert report.versions_after == {"db1": "15.20", "db2": "15.20", "db3": "15.20"}
    assert (report.old_leader, report.new_leader) == ("db1", "db2")
    assert [(m.member, m.result) for m in report.members] == [
        ("db3", "upgraded"),
        ("db2", "upgraded"),
        ("db1", "upgraded"),
    ]
    assert report.cost is not None and report.cost.write_down_s > 0  # the switchover's gap
    assert len(report.cost.write_gaps) == 1
    assert report.verdict is not None and report.verdict.safe
    assert not run.fake.drained
    assert run.fake.saved == [report]


async def test_a_cluster_already_on_the_version_is_left_alone(run: Run) -> None:
    run.fake.installed = {h: NEW for h in run.fake.installed}
    run.fake.running = {h: "15.20" for h in run.fake.running}
    report = UpgradeReport.model_validate(await (await run.start()).result())
    assert report.passed and report.cost is None
    assert member_steps(run.fake.calls) == []
    assert {m.result for m in report.members} == {"already"}


async def test_a_long_transaction_refuses_the_upgrade_before_anything_changes(run: Run) -> None:
    run.fake.long_transaction_on = "db1"
    err = await run.stopped(await run.start())
    assert err.type == "UpgradeRefused" and "open longer than 300 s" in str(err)
    assert "nothing was changed" in str(err) and "db1: pid 42" in str(err)
    assert member_steps(run.fake.calls) == []


async def test_a_member_that_does_not_come_back_stops_the_upgrade_there(run: Run) -> None:
    run.fake.broken_on_new = {"db3"}
    handle = await run.start()
    blocked = await run.blocked(handle)
    assert blocked.member == "db3" and "15.20" in blocked.reason
    assert run.fake.touched("db2") == [] and run.fake.touched("db1") == []
    assert run.fake.drained == {"db3"}  # Patroni promotes it not, HAProxy sends it nothing
    said = await handle.execute_update("decide", Decision(action=DecisionAction.abort, by="t"),
                                       result_type=str)  # fmt: skip
    assert "stops at db3" in said
    err = await run.stopped(handle)
    assert "stopped at db3" in str(err) and "no other member was touched" in str(err)
    assert run.fake.touched("db2") == [] and run.fake.touched("db1") == []
    assert run.fake.drained == {"db3"}
    report = run.fake.saved[-1]
    assert not report.passed and report.decisions[0].action is DecisionAction.abort


async def test_resume_after_a_fix_checks_the_member_again_and_goes_on(run: Run) -> None:
    run.fake.broken_on_new = {"db3"}
    handle = await run.start()
    await run.blocked(handle)
    run.fake.broken_on_new = set()  # the operator fixed it
    await handle.execute_update("decide", Decision(action=DecisionAction.resume),
                                result_type=str)  # fmt: skip
    report = UpgradeReport.model_validate(await handle.result())
    assert report.passed, report.reason
    assert report.versions_after == {"db1": "15.20", "db2": "15.20", "db3": "15.20"}
    assert not run.fake.drained


async def test_rollback_puts_the_member_back_and_stops(run: Run) -> None:
    run.fake.broken_on_new = {"db3"}
    handle = await run.start()
    await run.blocked(handle)
    await handle.execute_update("decide", Decision(action=DecisionAction.rollback),
                                result_type=str)  # fmt: skip
    err = await run.stopped(handle)
    assert "db3 was rolled back to 15.18" in str(err)
    assert run.fake.installed["db3"] == OLD and run.fake.running["db3"] == "15.18"
    assert run.fake.touched("db2") == [] and run.fake.touched("db1") == []
    assert not run.fake.drained  # healthy again on its old version: back in service
    report = run.fake.saved[-1]
    assert [(m.member, m.result) for m in report.members] == [("db3", "rolled back")]


async def test_a_decision_is_refused_while_nothing_waits_for_one(run: Run) -> None:
    run.fake.broken_on_new = {"db3"}
    handle = await run.start()
    await run.blocked(handle)
    await handle.execute_update("decide", Decision(action=DecisionAction.abort),
                                result_type=str)  # fmt: skip
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("decide", Decision(action=DecisionAction.resume),
                                    result_type=str)  # fmt: skip
    await run.stopped(handle)


async def cancelled(handle: Handle) -> None:
    with pytest.raises(WorkflowFailureError) as err:
        await handle.result()
    assert isinstance(err.value.cause, CancelledError), err.value


async def test_a_cancel_during_a_restart_undrains_the_member_once_the_cluster_is_whole(
    run: Run,
) -> None:
    run.fake.slow_restart_on = "db3"
    handle = await run.start()
    await asyncio.wait_for(run.fake.restarting.wait(), 30)
    await handle.cancel()
    await cancelled(handle)
    assert not run.fake.drained  # back in service, not left tagged by an aborted run
    assert run.fake.touched("db2") == [] and run.fake.touched("db1") == []
    report = run.fake.saved[-1]
    assert not report.passed
    assert report.reason.startswith("cancelled by an operator; db3 was undrained"), report.reason


async def test_a_cancel_while_waiting_for_a_decision_leaves_the_unhealthy_member_drained(
    run: Run,
) -> None:
    run.fake.broken_on_new = {"db3"}
    handle = await run.start()
    await run.blocked(handle)
    await handle.cancel()
    await cancelled(handle)
    assert run.fake.drained == {"db3"}
    assert "db3 stays drained (nofailover, noloadbalance): it was unhealthy" in (
        run.fake.saved[-1].reason
    )
