"""PostFailover: what a DBA does the morning after an unplanned failover, started by the
guardian when it sees one (or by hand: `pgha run post-failover`). It holds the cluster's
lock like any operation.

1. The old primary must rejoin as a replica (Patroni rewinds it). When it does not within
   the bound, it is reinitialised from the new leader if the spec allows; its writes that
   no replica had are gone then, which is why that is the spec's choice.
2. The new primary's archiver must not be held on an older timeline's segment that the
   repository holds with other content (a rewound member that once led keeps such
   `.ready` files): pgBackRest refuses it forever, PostgreSQL retries it before any newer
   segment, and pg_wal grows. `pgbackrest check` does not see it (the asynchronous push
   takes the newer segments on its own), so it is looked for: pgha/checks/stale_ready.py.
3. An incremental backup on the new timeline (the Backup workflow, which first proves with
   `pgbackrest check` that the new primary's WAL reaches the repository): the newest
   backup must not be one a restore would have to replay across the failover from.
4. A restore verification of that backup (the VerifyRestore workflow).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from pgha.backup_models import (
        BackupInput,
        BackupResult,
        BackupType,
        VerifyReport,
        VerifyRestoreInput,
    )
    from pgha.event_models import PostFailoverInput, PostFailoverReport
    from pgha.progress import Progress, StepState
    from pgha.spec import Role
    from pgha.status_models import PatroniStatus
    from pgha.steps import HostStep, StepResult
    from pgha.workflows.policy import CONVERGE
    from pgha.workflows.rolling_steps import HEALTH, leader_of
    from pgha.workflows.tracker import Tracker, failure_text


@workflow.defn(name="PostFailover")
class PostFailover:
    """Runbook: the old primary rejoined (or reinitialised when allowed); an incremental
    backup on the new timeline; a restore verification of it; report."""

    def __init__(self) -> None:
        self.tracker = Tracker("post-failover", "")

    @workflow.query(name="progress")
    def progress(self) -> Progress:
        return self.tracker.progress

    @workflow.run
    async def run(self, inp: PostFailoverInput) -> PostFailoverReport:
        spec = inp.spec
        self.tracker = Tracker("post-failover", spec.cluster)
        self.tracker.tag_search_attributes()
        started = workflow.now()
        self.tracker.phase("old primary")
        old_primary, leader = await self._rejoin(inp)
        report = PostFailoverReport(
            cluster=spec.cluster, workflow_id=workflow.info().workflow_id, started_at=started,
            finished_at=started, old_leader=inp.old_leader, new_leader=leader or inp.new_leader,
            old_primary=old_primary,
        )  # fmt: skip
        if spec.backup.enabled and spec.hosts_with(Role.backup_repo):
            # Runs started before this step replay without it.
            if workflow.patched("post-failover-release-stale"):
                released = await self._archiver(inp, report.new_leader)
                report = report.model_copy(update={"archiver": released})
            report = await self._backup_and_verify(inp, report)
        report = report.model_copy(update={"finished_at": workflow.now()})
        self.tracker.done(report.summary_line())
        return report

    async def _rejoin(self, inp: PostFailoverInput) -> tuple[str, str]:
        """How the old primary came back, and who leads."""
        spec = inp.spec
        try:
            view = await self._whole(inp, "rejoined", inp.rejoin_timeout_s)
            return "rejoined", leader_of(view)
        except ActivityError as err:
            why = failure_text(err)
        reinit = spec.guardian.reinit_old_primary if inp.reinit is None else inp.reinit
        if not reinit:
            return f"did not rejoin: {why} (guardian.reinit_old_primary is off)", ""
        try:
            await self.tracker.run(
                "reinit", f"reinitialise {inp.old_leader} from the leader", inp.old_leader,
                CONVERGE.execute("drill.reinit_diverged", _first(inp, {}), StepResult,
                                 summary="patronictl reinit"),
                lambda s: (StepState.changed if s.changed else StepState.ok, s.summary),
            )  # fmt: skip
            view = await self._whole(inp, "reinitialised", inp.rejoin_timeout_s)
        except ActivityError as err:
            return f"did not rejoin, and reinitialising failed: {failure_text(err)}", ""
        return "reinitialised", leader_of(view)

    async def _archiver(self, inp: PostFailoverInput, leader: str) -> str:
        """The new primary's archiver released from older timelines' segments the
        repository refuses (each kept in a copy, never deleted); what was done."""
        self.tracker.phase("archiver")
        try:
            r = await self.tracker.run(
                "release-ready", "archiver not held on an old timeline", leader,
                CONVERGE.execute("archiving.release_stale_ready",
                                 HostStep(spec=inp.spec, host=leader), StepResult,
                                 summary="release stale WAL segments"),
                lambda r: (StepState.changed if r.changed else StepState.ok, r.summary),
            )  # fmt: skip
        except ActivityError as err:
            return f"not checked: {failure_text(err)}"
        return r.summary

    async def _whole(self, inp: PostFailoverInput, key: str, within: float) -> PatroniStatus:
        return await self.tracker.run(
            key, "every member streaming", inp.old_leader,
            HEALTH.execute("drill.wait_healthy", _first(inp, {"within_s": f"{within:g}"}),
                           PatroniStatus, summary="the cluster is whole"),
            lambda v: (StepState.ok, f"{leader_of(v)} leads, all streaming"),
        )  # fmt: skip

    async def _backup_and_verify(self, inp: PostFailoverInput,
                                 report: PostFailoverReport) -> PostFailoverReport:  # fmt: skip
        spec, wf = inp.spec, workflow.info().workflow_id
        self.tracker.phase("backup on the new timeline")
        try:
            backup = await self.tracker.run(
                "backup", "incremental backup (after pgbackrest check)", None,
                workflow.execute_child_workflow(
                    "Backup", BackupInput(spec=spec, type=BackupType.incr),
                    result_type=BackupResult, id=f"{wf}/backup"),
                lambda b: (StepState.changed, f"{b.backup.label} on timeline "
                                              f"{_timeline(b.backup.wal_start)}"),
            )  # fmt: skip
        except ChildWorkflowError as err:
            raise ApplicationError(
                f"post-failover of {spec.cluster}: the backup on the new timeline failed: "
                f"{failure_text(err)}", report, type="PostFailoverFailed", non_retryable=True,
            ) from None  # fmt: skip
        report = report.model_copy(update={
            "archiving_check_s": backup.check_s, "backup_label": backup.backup.label,
            "backup_timeline": _timeline(backup.backup.wal_start)})  # fmt: skip
        if spec.verify_host() is None:
            return report
        self.tracker.phase("restore verification")
        try:
            verified = await self.tracker.run(
                "verify", f"restore verification of {backup.backup.label}", None,
                workflow.execute_child_workflow(
                    "VerifyRestore", VerifyRestoreInput(spec=spec, set_label=backup.backup.label),
                    result_type=VerifyReport, id=f"{wf}/verify"),
                lambda v: (StepState.ok if v.passed else StepState.failed,
                           "passed" if v.passed else v.reason),
            )  # fmt: skip
        except ChildWorkflowError as err:
            return report.model_copy(update={"verified": False, "verify_reason": failure_text(err)})
        return report.model_copy(update={"verified": verified.passed,
                                         "verify_reason": verified.reason})  # fmt: skip


def _first(inp: PostFailoverInput, params: dict[str, str]) -> HostStep:
    """A step on the new leader (it answers for the whole cluster), else the first member."""
    members = [h.name for h in inp.spec.hosts_with(Role.postgres)]
    host = inp.new_leader if inp.new_leader in members else members[0]
    return HostStep(spec=inp.spec, host=host, params=params)


def _timeline(wal: str) -> int | None:
    """The timeline of a WAL segment name (its first eight hex digits)."""
    try:
        return int(wal[:8], 16) if len(wal) >= 8 else None
    except ValueError:
        return None
