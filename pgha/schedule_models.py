"""pgha's schedules as data: ids, the schedules a spec asks for, and what the schedule
commands return. Pure: no Temporal calls (pgha/schedules.py makes them), no I/O.

A cluster has at most one schedule per kind of ``backup.schedule``, id
``pgha:<cluster>:<kind>``; each starts the ``ScheduledRun`` workflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from pgha.backup_models import ScheduledRunInput, ScheduleKind
from pgha.models import Model
from pgha.operations import lock_id
from pgha.search_attributes import CLUSTER_ATTR, OPERATION_ATTR
from pgha.spec import BackupSchedule, ClusterSpec

#: The workflow type every pgha schedule starts (pgha/workflows/scheduled.py).
SCHEDULED_RUN = "ScheduledRun"
#: How late a missed run may still start, e.g. after the Temporal server was down. Long
#: enough to cover a restart or an overnight outage of the server (a nightly backup still
#: runs in the morning), short enough that a run never lands a day late on top of the next
#: one. Several missed runs of one schedule start only once: overlap SKIP skips the rest.
CATCHUP_WINDOW = timedelta(hours=6)
#: Memo key (on the scheduled action) holding the cron string as the spec gave it: the
#: server keeps only its calendar translation, so this is what sync compares the spec with.
MEMO_CRON = "pgha-cron"


def schedule_id(cluster: str, kind: ScheduleKind) -> str:
    return f"pgha:{cluster}:{kind.value}"


def parse_schedule_id(sid: str) -> tuple[str, ScheduleKind] | None:
    """``pgha:<cluster>:<kind>`` -> (cluster, kind); None for any other schedule id."""
    parts = sid.split(":")
    if len(parts) != 3 or parts[0] != "pgha" or not parts[1]:
        return None
    try:
        return parts[1], ScheduleKind(parts[2])
    except ValueError:
        return None


def run_workflow_id(cluster: str, kind: ScheduleKind) -> str:
    """Workflow id of the runs a schedule starts; the server appends the run's time."""
    return f"pgha-schedule:{cluster}:{kind.value}"


def scheduled_operation(kind: ScheduleKind) -> str:
    """The PghaOperation of a scheduled run (the child it starts has the plain name)."""
    return f"scheduled-{kind.value}"


def spec_field(kind: ScheduleKind) -> str:
    return f"backup.schedule.{kind.name}"


def describe_kind(kind: ScheduleKind) -> str:
    return "restore verification" if kind.backup_type is None else f"{kind.value} backup"


def managed_note(cluster: str) -> str:
    return f"managed by `pgha schedule sync --cluster {cluster}` from the cluster spec"


class ScheduleSnapshot(Model):
    """The parts of a schedule that sync owns; two equal snapshots need no update. State
    (paused, note) is the operator's and deliberately absent."""

    workflow: str
    workflow_id: str
    task_queue: str
    #: None when the action carries no cron memo (made outside pgha, or undecodable).
    cron: str | None
    #: None when the action's argument does not decode as a ScheduledRunInput.
    run_input: ScheduledRunInput | None
    search_attributes: dict[str, str]
    summary: str | None
    overlap: str
    catchup_window_s: float | None
    pause_on_failure: bool


def differences(want: ScheduleSnapshot, have: ScheduleSnapshot) -> list[str]:
    """Names of the fields that differ (``run_input`` is the spec the runs get). Pure."""
    fields = ScheduleSnapshot.model_fields
    return [name for name in fields if getattr(want, name) != getattr(have, name)]


class DesiredSchedule(Model):
    """One schedule the spec asks for."""

    id: str
    cluster: str
    kind: ScheduleKind
    cron: str
    task_queue: str
    run_input: ScheduledRunInput

    @property
    def summary(self) -> str:
        return f"scheduled {describe_kind(self.kind)} of cluster {self.cluster}"

    @property
    def search_attributes(self) -> TypedSearchAttributes:
        return TypedSearchAttributes(
            [
                SearchAttributePair(CLUSTER_ATTR, self.cluster),
                SearchAttributePair(OPERATION_ATTR, scheduled_operation(self.kind)),
            ]
        )

    def snapshot(self) -> ScheduleSnapshot:
        return ScheduleSnapshot(
            workflow=SCHEDULED_RUN,
            workflow_id=run_workflow_id(self.cluster, self.kind),
            task_queue=self.task_queue,
            cron=self.cron,
            run_input=self.run_input,
            search_attributes={p.key.name: str(p.value) for p in self.search_attributes},
            summary=self.summary,
            overlap=ScheduleOverlapPolicy.SKIP.name,
            catchup_window_s=CATCHUP_WINDOW.total_seconds(),
            pause_on_failure=False,
        )

    def schedule(self, state: ScheduleState | None = None) -> Schedule:
        """The SDK schedule; ``state`` (paused, note) defaults to running with pgha's note."""
        details = (
            f"Started by schedule `{self.id}` (cron `{self.cron}`, UTC) from "
            f"`{spec_field(self.kind)}`; {managed_note(self.cluster)}. The run takes the "
            f"cluster's lock `{lock_id(self.cluster)}` and waits while another operation "
            "holds it."
        )
        return Schedule(
            action=ScheduleActionStartWorkflow(
                SCHEDULED_RUN,
                self.run_input,
                id=run_workflow_id(self.cluster, self.kind),
                task_queue=self.task_queue,
                memo={MEMO_CRON: self.cron},
                typed_search_attributes=self.search_attributes,
                static_summary=self.summary,
                static_details=details,
            ),
            spec=ScheduleSpec(cron_expressions=[self.cron]),
            # SKIP: a run still waiting or working when the next time comes makes that time
            # a no-op; never two runs of one schedule queued behind each other.
            policy=SchedulePolicy(
                overlap=ScheduleOverlapPolicy.SKIP,
                catchup_window=CATCHUP_WINDOW,
                # A failed backup must not silence the next one: the schedule keeps going.
                pause_on_failure=False,
            ),
            state=state or ScheduleState(note=managed_note(self.cluster)),
        )


#: The crons a scheduled run's spec carries: none (see run_spec).
NO_SCHEDULE = BackupSchedule(full=None, diff=None, incr=None, verify_restore=None)


def run_spec(spec: ClusterSpec) -> ClusterSpec:
    """The spec a scheduled run gets: ``spec`` without its crons. A run does not need them,
    and leaving them out means a change of one cron updates that one schedule only, not
    every schedule whose input would otherwise carry the changed cron. Pure."""
    return spec.model_copy(
        update={"backup": spec.backup.model_copy(update={"schedule": NO_SCHEDULE})}
    )


def desired_schedules(spec: ClusterSpec, task_queue: str) -> list[DesiredSchedule]:
    """The schedules ``spec`` asks for: one per non-null cron of ``backup.schedule``, none
    when ``backup.enabled`` is false. Each run gets ``run_spec(spec)``. Pure."""
    if not spec.backup.enabled:
        return []
    given = run_spec(spec)
    s = spec.backup.schedule
    crons = {
        ScheduleKind.full: s.full,
        ScheduleKind.diff: s.diff,
        ScheduleKind.incr: s.incr,
        ScheduleKind.verify_restore: s.verify_restore,
    }
    return [
        DesiredSchedule(
            id=schedule_id(spec.cluster, kind),
            cluster=spec.cluster,
            kind=kind,
            cron=cron,
            task_queue=task_queue,
            run_input=ScheduledRunInput(spec=given, kind=kind),
        )
        for kind, cron in crons.items()
        if cron is not None
    ]


class SyncResult(Model):
    """What `sync_schedules` did (or, with dry_run, would do), by schedule id."""

    cluster: str
    dry_run: bool = False
    created: list[str] = []
    updated: list[str] = []
    deleted: list[str] = []
    unchanged: list[str] = []
    #: For each updated id, the fields that differed (see ScheduleSnapshot).
    changes: dict[str, list[str]] = {}


class RecentRun(Model):
    scheduled_at: datetime
    started_at: datetime
    workflow_id: str
    run_id: str
    #: running, completed, failed, ...; None when the run could not be described.
    status: str | None = None


class ScheduleRow(Model):
    """One pgha schedule as `pgha schedule list` shows it."""

    id: str
    cluster: str
    kind: ScheduleKind
    #: The spec's cron as last synced; None for a schedule changed outside pgha.
    cron: str | None
    paused: bool
    note: str
    next_runs: list[datetime] = []
    #: Newest first.
    recent: list[RecentRun] = []
    running: list[str] = []
    actions: int = 0
    skipped_overlap: int = 0
    missed_catchup: int = 0


class TriggerResult(Model):
    schedule_id: str
    #: The run the trigger started; None when it was skipped or not seen in time.
    workflow_id: str | None = None
    #: Overlap policy SKIP: a run of this schedule was still running.
    skipped: bool = False
    running: list[str] = []


class LockQuery(Model):
    cluster: str


class LockHolder(Model):
    """Who holds ``pgha-op:<cluster>``, as far as the server says."""

    workflow_id: str
    running: bool = False
    operation: str = ""
    since: datetime | None = None
