"""The Switchover operation on the real dev server with fake members: to the best replica
or the one asked for, refused for the leader or a stranger, measured by the probe."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from pgha.operations import SWITCHOVER, start_operation
from pgha.rolling_models import SwitchoverInput, SwitchoverReport
from pgha.spec import ClusterSpec
from pgha.worker import build_worker
from pgha.workflows.switchover import Switchover
from tests.workflows.upgrade_fakes import FakeUpgradeCluster


async def switchover(env: WorkflowEnvironment, spec: ClusterSpec, fake: FakeUpgradeCluster,
                     to: str | None) -> SwitchoverReport:  # fmt: skip
    task_queue = f"switchover-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[Switchover],
                            activities=fake.activities()):  # fmt: skip
        inp = SwitchoverInput(spec=spec, to=to)
        handle = await start_operation(env.client, SWITCHOVER, spec.cluster, inp,
                                       task_queue=task_queue)  # fmt: skip
        return SwitchoverReport.model_validate(await handle.result())


async def test_without_a_target_the_best_replica_takes_over(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeUpgradeCluster()
    report = await switchover(env, spec, fake, None)
    assert (report.old_leader, report.new_leader) == ("db1", "db2")
    assert report.cost is not None and report.cost.write_down_s > 0
    assert report.verdict is not None and report.verdict.safe


async def test_the_replica_asked_for_takes_over(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeUpgradeCluster()
    report = await switchover(env, spec, fake, "db3")
    assert report.new_leader == "db3" and fake.leader == "db3"


async def test_the_leader_itself_is_refused_and_nothing_happens(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeUpgradeCluster()
    with pytest.raises(WorkflowFailureError) as err:
        await switchover(env, spec, fake, "db1")
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "SwitchoverRefused"
    assert "db1 is the leader" in str(cause) and "db2, db3" in str(cause)
    assert [a for a, _ in fake.calls if a == "switchover"] == []
