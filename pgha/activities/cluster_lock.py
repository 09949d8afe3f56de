"""Who holds a cluster's lock (``pgha-op:<cluster>``): read from the Temporal server, so a
scheduled run waiting for the lock can name the operation it waits for. Read-only."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from pgha.operations import lock_id
from pgha.schedule_models import LockHolder, LockQuery
from pgha.search_attributes import OPERATION_ATTR


@activity.defn(name="cluster.describe_lock")
async def describe_lock(query: LockQuery) -> LockHolder:
    """Describe the cluster's lock workflow (its latest run). An activity because workflow
    code cannot call the server; it uses the worker's own client."""
    wf_id = lock_id(query.cluster)
    try:
        desc = await activity.client().get_workflow_handle(wf_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return LockHolder(workflow_id=wf_id)
        raise
    return LockHolder(
        workflow_id=wf_id,
        running=desc.status == WorkflowExecutionStatus.RUNNING,
        operation=desc.typed_search_attributes.get(OPERATION_ATTR) or desc.workflow_type,
        since=desc.start_time,
    )
