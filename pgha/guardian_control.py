"""Start, stop, feed and read a cluster's guardian (the Guardian workflow) through a
Temporal client: what `pgha guard`, `pgha event send`, `pgha events` and provision use."""

from __future__ import annotations

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError

from pgha.errors import PghaError
from pgha.event_models import ExternalEvent, GuardianInput, GuardianView
from pgha.operations import guardian_id
from pgha.search_attributes import CLUSTER_ATTR, OPERATION_ATTR
from pgha.spec import ClusterSpec

GUARD = "guard"


class GuardianNotRunning(PghaError):
    """The cluster has no running guardian."""


async def running(client: Client, cluster: str) -> WorkflowHandle[object, GuardianView] | None:
    handle = client.get_workflow_handle(guardian_id(cluster), result_type=GuardianView)
    try:
        desc = await handle.describe()
    except RPCError:
        return None
    return handle if desc.status == WorkflowExecutionStatus.RUNNING else None


async def start_guardian(client: Client, spec: ClusterSpec, task_queue: str) -> tuple[str, bool]:
    """Start the cluster's guardian, or hand a running one the spec (it takes it at its
    next look: a changed webhook, interval or reaction needs no restart).

    :returns: the workflow id, and whether it was started now (False: it was running).
    """
    if (handle := await running(client, spec.cluster)) is not None:
        await handle.execute_update("use_spec", spec, result_type=str)
        return handle.id, False
    await client.start_workflow(
        "Guardian", GuardianInput(spec=spec), id=guardian_id(spec.cluster),
        task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(CLUSTER_ATTR, spec.cluster),
            SearchAttributePair(OPERATION_ATTR, GUARD)]),
        static_summary=f"guardian of cluster {spec.cluster}",
    )  # fmt: skip
    return guardian_id(spec.cluster), True


async def _required(client: Client, cluster: str) -> WorkflowHandle[object, GuardianView]:
    handle = await running(client, cluster)
    if handle is None:
        raise GuardianNotRunning(
            f"cluster {cluster} has no running guardian (workflow {guardian_id(cluster)}); "
            f"start it with `pgha guard start --cluster {cluster}`"
        )
    return handle


async def stop_guardian(client: Client, cluster: str) -> GuardianView:
    """Ask the guardian to stop after its current step; its last view."""
    handle = await _required(client, cluster)
    await handle.signal("stop")
    return await handle.result()


async def send_event(client: Client, cluster: str, event: ExternalEvent) -> str:
    handle = await _required(client, cluster)
    said: str = await handle.execute_update("send_event", event, result_type=str)
    return said


async def guardian_view(client: Client, cluster: str) -> GuardianView:
    handle = await _required(client, cluster)
    view: GuardianView = await handle.query("events", result_type=GuardianView)
    return view
