"""EtcdAdd and EtcdRemove on the real dev server with fake activities: the order that keeps
the quorum (add: member add, then the start; remove: Patroni first, then member remove,
then the host retired), and the refusals that change nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from pgha.operations import ETCD_ADD, ETCD_REMOVE, Operation, start_operation
from pgha.spec import ClusterSpec, HostSpec, Role
from pgha.steps import HostStep, StepResult
from pgha.topology_models import EtcdMemberInput, EtcdMemberReport
from pgha.worker import build_worker
from pgha.workflows.etcd_membership import EtcdAdd, EtcdRemove

NAMES = ["etcd.check_cluster", "etcd.read_state", "packages.ensure_host", "etcd.add_member",
         "etcd.ensure_member", "patroni.ensure_config", "etcd.remove_member",
         "etcd.retire_member"]  # fmt: skip


def fakes(calls: list[tuple[str, str, dict[str, str]]]) -> list[Callable[..., Any]]:
    def fake(name: str) -> Callable[..., Any]:
        @activity.defn(name=name)
        async def run(step: HostStep) -> StepResult:
            calls.append((name, step.host, dict(step.params)))
            members = [h.name for h in step.spec.hosts_with(Role.etcd)]
            facts = {"token": "pgha-t", "members": members, "leader": members[0]}
            return StepResult(host=step.host, changed=True, summary=name, facts=facts)

        return run

    return [fake(n) for n in NAMES]


def with_etcd_host(spec: ClusterSpec, name: str) -> ClusterSpec:
    extra = HostSpec.model_validate({"name": name, "address": "10.0.0.99", "roles": ["etcd"]})
    return spec.model_copy(update={"hosts": [*spec.hosts, extra]})


async def run(env: WorkflowEnvironment, op: Operation, inp: EtcdMemberInput,
              calls: list[tuple[str, str, dict[str, str]]]) -> Any:  # fmt: skip
    task_queue = f"etcd-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[EtcdAdd, EtcdRemove],
                            activities=fakes(calls)):  # fmt: skip
        handle = await start_operation(env.client, op, inp.spec.cluster, inp,
                                       task_queue=task_queue)  # fmt: skip
        return await handle.result()


async def test_add_puts_the_member_in_the_list_before_it_starts_then_points_patroni_at_it(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    spec = with_etcd_host(spec, "etcd4")
    calls: list[tuple[str, str, dict[str, str]]] = []
    report = EtcdMemberReport.model_validate(
        await run(env, ETCD_ADD, EtcdMemberInput(spec=spec, host="etcd4"), calls)
    )
    steps = [(n, h) for n, h, _ in calls]
    assert steps.index(("etcd.add_member", "db1")) < steps.index(("etcd.ensure_member", "etcd4"))
    start = next(p for n, h, p in calls if (n, h) == ("etcd.ensure_member", "etcd4"))
    assert start == {"token": "pgha-t", "state": "existing"}
    assert steps[-1][0] == "patroni.ensure_config" and "etcd4" in report.members


async def test_remove_moves_patroni_off_the_member_before_removing_it(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    spec = with_etcd_host(spec, "etcd4")
    calls: list[tuple[str, str, dict[str, str]]] = []
    report = EtcdMemberReport.model_validate(
        await run(env, ETCD_REMOVE, EtcdMemberInput(spec=spec, host="etcd4"), calls)
    )
    steps = [n for n, _, _ in calls]
    assert steps.index("patroni.ensure_config") < steps.index("etcd.remove_member")
    assert steps.index("etcd.remove_member") < steps.index("etcd.retire_member")
    assert "etcd4" not in report.members and report.next_steps


async def test_remove_below_three_members_is_refused_and_changes_nothing(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    calls: list[tuple[str, str, dict[str, str]]] = []
    etcd = spec.hosts_with(Role.etcd)[0].name
    with pytest.raises(WorkflowFailureError) as err:
        await run(env, ETCD_REMOVE, EtcdMemberInput(spec=spec, host=etcd), calls)
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "EtcdChangeRefused"
    assert "fewer than three etcd members" in str(cause)
    assert calls == []
