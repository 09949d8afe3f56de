"""Starting operations: workflow ids, the per-cluster lock, search attributes, summaries.

Mutating operations share the workflow id ``pgha-op:<cluster>`` with conflict policy FAIL,
so the Temporal server itself refuses a second one while the first runs (visibility is
eventually consistent and never used to lock). Read-only operations get unique ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from pgha.errors import ClusterBusy
from pgha.search_attributes import CLUSTER_ATTR, OPERATION_ATTR


@dataclass(frozen=True)
class Operation:
    """One kind of operation: its user-facing name, workflow type, and whether it mutates."""

    name: str
    workflow: str
    mutating: bool
    #: Whether it changes roles, members or services on purpose (a switchover, a fault, a
    #: restart): the guardian counts what changes while it runs as its doing, not an
    #: incident. A backup or a restore verification changes none of these.
    disruptive: bool = True


PREFLIGHT = Operation("preflight", "Preflight", mutating=False)
PROVISION = Operation("provision", "Provision", mutating=True)
STATUS = Operation("status", "ClusterStatus", mutating=False)
BACKUP = Operation("backup", "Backup", mutating=True, disruptive=False)
#: Writes a sentinel and switches WAL on the primary, and must not overlap a backup.
VERIFY_RESTORE = Operation("verify-restore", "VerifyRestore", mutating=True, disruptive=False)
BACKUPS = Operation("backups", "BackupsView", mutating=False)
DRILL = Operation("drill", "Drill", mutating=True)
UPGRADE = Operation("upgrade", "Upgrade", mutating=True)
PROXY_UPGRADE = Operation("proxy-upgrade", "ProxyUpgrade", mutating=True)
PATRONI_UPGRADE = Operation("patroni-upgrade", "PatroniUpgrade", mutating=True)
ETCD_UPGRADE = Operation("etcd-upgrade", "EtcdUpgrade", mutating=True)
PGBACKREST_UPGRADE = Operation("pgbackrest-upgrade", "PgbackrestUpgrade", mutating=True)
#: Mutating even as a dry run: its plan must not race another operation's changes.
RECONFIGURE = Operation("reconfigure", "Reconfigure", mutating=True)
SWITCHOVER = Operation("switchover", "Switchover", mutating=True)
ADD_NODE = Operation("add-node", "AddNode", mutating=True)
REMOVE_NODE = Operation("remove-node", "RemoveNode", mutating=True)
ETCD_ADD = Operation("etcd-add", "EtcdAdd", mutating=True)
ETCD_REMOVE = Operation("etcd-remove", "EtcdRemove", mutating=True)
#: The guardian's reaction to an unplanned failover (pgha.workflows.post_failover).
POST_FAILOVER = Operation("post-failover", "PostFailover", mutating=True)

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        PREFLIGHT,
        PROVISION,
        STATUS,
        BACKUP,
        VERIFY_RESTORE,
        BACKUPS,
        DRILL,
        UPGRADE,
        PROXY_UPGRADE,
        PATRONI_UPGRADE,
        ETCD_UPGRADE,
        PGBACKREST_UPGRADE,
        RECONFIGURE,
        SWITCHOVER,
        ADD_NODE,
        REMOVE_NODE,
        ETCD_ADD,
        ETCD_REMOVE,
        POST_FAILOVER,
    )
}


def lock_id(cluster: str) -> str:
    return f"pgha-op:{cluster}"


def guardian_id(cluster: str) -> str:
    """The guardian's fixed workflow id: one per cluster, and not the lock (it changes
    nothing by itself; its reactions take the lock like any operation)."""
    return f"pgha-guard:{cluster}"


def workflow_id(op: Operation, cluster: str) -> str:
    if op.mutating:
        return lock_id(cluster)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"pgha-{op.name}:{cluster}:{stamp}-{uuid.uuid4().hex[:6]}"


async def start_operation(
    client: Client, op: Operation, cluster: str, arg: Any, *, task_queue: str
) -> WorkflowHandle[Any, Any]:
    """Start ``op`` on ``cluster``.

    :raises ClusterBusy: a mutating operation already runs on the cluster; names it.
    """
    wf_id = workflow_id(op, cluster)
    try:
        return await client.start_workflow(
            op.workflow,
            arg,
            id=wf_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(CLUSTER_ATTR, cluster),
                    SearchAttributePair(OPERATION_ATTR, op.name),
                ]
            ),
            static_summary=f"{op.name} of cluster {cluster}",
        )
    except WorkflowAlreadyStartedError:
        raise await _busy(client, cluster, op) from None


async def _busy(client: Client, cluster: str, wanted: Operation) -> ClusterBusy:
    wf_id = lock_id(cluster)
    running, since = "another operation", ""
    try:
        desc = await client.get_workflow_handle(wf_id).describe()
        running = desc.typed_search_attributes.get(OPERATION_ATTR) or desc.workflow_type
        since = f" since {desc.start_time:%Y-%m-%d %H:%M:%S} UTC" if desc.start_time else ""
    except Exception:  # the refusal matters more than its details
        pass
    return ClusterBusy(
        f"cluster {cluster} is busy: {running} is running{since} (workflow {wf_id}); "
        f"{wanted.name} was not started. Follow it with `pgha watch {wf_id}`, or stop it "
        f"with `pgha cancel {wf_id}`, then try again."
    )
