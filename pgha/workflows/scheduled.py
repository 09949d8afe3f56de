"""ScheduledRun: what a backup or restore-verification schedule starts. Deterministic.

A schedule cannot hold the cluster's lock itself (the server appends a timestamp to the
ids it starts), so the run starts the real operation as a child with the lock id
``pgha-op:<cluster>``: the server refuses it while another operation runs, and the run
waits and tries again until ``busy_wait_s`` is spent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    TerminatedError,
    WorkflowAlreadyStartedError,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from pgha.backup_models import (
        BackupInput,
        ScheduledRunInput,
        ScheduledRunResult,
        VerifyRestoreInput,
    )
    from pgha.models import Model
    from pgha.operations import BACKUP, VERIFY_RESTORE, Operation, lock_id
    from pgha.progress import Progress, StepState
    from pgha.schedule_models import LockHolder, LockQuery, describe_kind, scheduled_operation
    from pgha.search_attributes import CLUSTER_ATTR, OPERATION_ATTR
    from pgha.workflows.policy import STATUS_READ
    from pgha.workflows.tracker import Tracker

#: Bounds of the pause between two tries for a busy lock (see busy_retry_interval).
MIN_BUSY_RETRY = timedelta(seconds=1)
MAX_BUSY_RETRY = timedelta(minutes=1)


def busy_retry_interval(busy_wait_s: float) -> timedelta:
    """How long a run waits between two tries for a busy lock: a tenth of the whole wait,
    between 1 s and 1 min. So the default hour tries once a minute (a backup starts at most
    a minute after the holder ends), and a short wait (tests) still tries a few times. Pure.
    """
    return min(MAX_BUSY_RETRY, max(MIN_BUSY_RETRY, timedelta(seconds=busy_wait_s / 10)))


def _fmt_wait(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _child_failure(err: ChildWorkflowError) -> tuple[str, str]:
    """(reason, failure type) of a failed child, for the run's own failure."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.message, cause.type or "OperationFailed"
    if isinstance(cause, CancelledError):
        return "it was cancelled", "OperationCancelled"
    if isinstance(cause, TerminatedError):
        return "it was terminated", "OperationTerminated"
    if isinstance(cause, TemporalTimeoutError):
        return "it timed out", "OperationTimedOut"
    return str(cause or err), "OperationFailed"


@workflow.defn(name="ScheduledRun")
class ScheduledRun:
    """Runbook: take the cluster's lock by starting the operation (a backup of the kind, or
    a restore verification) as a child with the lock id; while another operation holds the
    lock, wait and try again; fail with ClusterBusy when the wait is spent; fail with the
    child's reason when it fails."""

    def __init__(self) -> None:
        self.tracker = Tracker("scheduled-run", "")

    @workflow.query(name="progress")
    def progress(self) -> Progress:
        return self.tracker.progress

    @workflow.run
    async def run(self, inp: ScheduledRunInput) -> ScheduledRunResult:
        cluster = inp.spec.cluster
        op, arg = _operation(inp)
        self.tracker = Tracker(scheduled_operation(inp.kind), cluster)
        self.tracker.tag_search_attributes()
        self.tracker.add("lock", f"take the lock {lock_id(cluster)}")
        self.tracker.add("run", f"{op.name} ({describe_kind(inp.kind)})")
        self.tracker.phase("taking the cluster's lock")
        self.tracker.start("lock")
        child = await self._start(inp, op, arg)
        started = workflow.now()
        self.tracker.finish("lock", StepState.ok, f"started {op.workflow} as {child.id}")
        self.tracker.phase(f"running {op.name}")
        self.tracker.start("run", f"workflow {child.id}")
        try:
            await child
        except ChildWorkflowError as err:
            reason, kind = _child_failure(err)
            self.tracker.finish("run", StepState.failed, reason)
            self.tracker.done(f"{op.name} failed")
            # Fails this run too, so the schedule's run shows red in the Web UI with why.
            raise ApplicationError(
                f"scheduled {describe_kind(inp.kind)} of cluster {cluster}: {op.name} "
                f"(workflow {child.id}) failed: {reason}",
                type=kind,
                non_retryable=True,
            ) from err
        self.tracker.finish("run", StepState.ok, f"workflow {child.id} completed")
        self.tracker.done(f"{op.name} of cluster {cluster} completed")
        return ScheduledRunResult(
            kind=inp.kind,
            workflow_id=child.id,
            run_id=child.first_execution_run_id or "",
            started_at=started,
        )

    async def _start(
        self, inp: ScheduledRunInput, op: Operation, arg: Model
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        """Start the child under the lock id, waiting while another operation holds it.

        :raises ApplicationError: ClusterBusy (non-retryable) once ``busy_wait_s`` is spent.
        """
        cluster = inp.spec.cluster
        deadline = workflow.now() + timedelta(seconds=inp.busy_wait_s)
        interval = busy_retry_interval(inp.busy_wait_s)
        while True:
            try:
                return await workflow.start_child_workflow(
                    op.workflow,
                    arg,
                    id=lock_id(cluster),
                    search_attributes=TypedSearchAttributes(
                        [
                            SearchAttributePair(CLUSTER_ATTR, cluster),
                            SearchAttributePair(OPERATION_ATTR, op.name),
                        ]
                    ),
                    # The run going away (terminated, timed out) must not leave the cluster
                    # under an orphan; a cancel lets the operation stop cleanly.
                    parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                    static_summary=f"{op.name} of cluster {cluster} (scheduled)",
                )
            except WorkflowAlreadyStartedError:
                holder = await self._holder(cluster)
            left = deadline - workflow.now()
            if left <= timedelta(0):
                message = _busy_message(inp, holder)
                self.tracker.finish("lock", StepState.failed, message)
                self.tracker.done("the cluster stayed busy")
                raise ApplicationError(message, type="ClusterBusy", non_retryable=True)
            pause = min(interval, left)
            self.tracker.start(
                "lock",
                f"{_holder_text(holder)} holds the cluster; next try in "
                f"{_fmt_wait(pause.total_seconds())}",
            )
            await workflow.sleep(pause)

    async def _holder(self, cluster: str) -> LockHolder:
        try:
            return await STATUS_READ.execute(
                "cluster.describe_lock",
                LockQuery(cluster=cluster),
                LockHolder,
                summary=f"who holds {lock_id(cluster)}",
            )
        except ActivityError:  # naming the holder is a courtesy; the refusal is what counts
            return LockHolder(workflow_id=lock_id(cluster), running=True)


def _operation(inp: ScheduledRunInput) -> tuple[Operation, Model]:
    backup_type = inp.kind.backup_type
    if backup_type is None:
        return VERIFY_RESTORE, VerifyRestoreInput(spec=inp.spec)
    return BACKUP, BackupInput(spec=inp.spec, type=backup_type)


def _holder_text(holder: LockHolder) -> str:
    what = holder.operation or "another operation"
    return f"{what} (workflow {holder.workflow_id}{_since(holder.since)})"


def _since(when: datetime | None) -> str:
    return f", running since {when:%Y-%m-%d %H:%M:%S} UTC" if when else ""


def _busy_message(inp: ScheduledRunInput, holder: LockHolder) -> str:
    cluster, kind = inp.spec.cluster, inp.kind
    return (
        f"cluster {cluster} is busy: {_holder_text(holder)} holds its lock; the scheduled "
        f"{describe_kind(kind)} waited {_fmt_wait(inp.busy_wait_s)} for it and gave up. The "
        f"schedule runs it again at its next time. Follow the holder with `pgha watch "
        f"{holder.workflow_id}` (or stop it with `pgha cancel {holder.workflow_id}`); to run "
        f"this now once it is done: `pgha schedule trigger --cluster {cluster} {kind.value}`."
    )
