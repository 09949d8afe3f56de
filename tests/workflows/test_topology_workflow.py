"""AddNode and RemoveNode refuse, on the real dev server, what they cannot do safely: a
host that is not a database-only host of the spec, one that is a member already, removing
below two database hosts. Nothing is changed when they refuse."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from pgha.operations import ADD_NODE, REMOVE_NODE, Operation, start_operation
from pgha.spec import ClusterSpec, HostSpec, Role
from pgha.topology_models import NodeInput
from pgha.worker import build_worker
from pgha.workflows.topology import AddNode, RemoveNode
from tests.workflows.upgrade_fakes import FakeUpgradeCluster


async def refusal(env: WorkflowEnvironment, op: Operation, inp: NodeInput,
                  fake: FakeUpgradeCluster) -> ApplicationError:  # fmt: skip
    task_queue = f"topology-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[AddNode, RemoveNode],
                            activities=fake.activities()):  # fmt: skip
        handle = await start_operation(env.client, op, inp.spec.cluster, inp,
                                       task_queue=task_queue)  # fmt: skip
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "NodeRefused", cause
    assert fake.touched("db1") == fake.touched("db2") == fake.touched("db3") == []
    return cause


def with_host(spec: ClusterSpec, name: str, roles: list[Role]) -> ClusterSpec:
    extra = HostSpec.model_validate({"name": name, "address": "10.0.0.99", "roles": roles})
    return spec.model_copy(update={"hosts": [*spec.hosts, extra]})


async def test_an_etcd_member_is_not_a_node_to_add_or_remove(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    etcd = spec.hosts_with(Role.etcd)[0].name
    for op in (ADD_NODE, REMOVE_NODE):
        err = await refusal(env, op, NodeInput(spec=spec, host=etcd), FakeUpgradeCluster())
        assert "etcd-add / etcd-remove" in str(err)


async def test_a_host_the_spec_lacks_is_refused(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    err = await refusal(env, ADD_NODE, NodeInput(spec=spec, host="db9"), FakeUpgradeCluster())
    assert "db9 is not in the spec" in str(err)


async def test_adding_a_member_twice_is_refused(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    # The fake cluster's members are db1-db3; the spec lists db3 as a database-only host.
    spec = spec.model_copy(update={"hosts": [h for h in spec.hosts if h.name != "db3"]})
    spec = with_host(spec, "db3", [Role.postgres])
    fake = FakeUpgradeCluster()
    err = await refusal(env, ADD_NODE, NodeInput(spec=spec, host="db3"), fake)
    assert "db3 is a member" in str(err)
