"""VerifyRestore: prove a backup restores, by restoring it and looking at the result.

A verification that finds a problem fails the workflow (red in the Web UI) with the reason,
after its report is saved and the scratch copy removed. Teardown runs on every path,
cancellation included.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from pgha.backup_models import (
        BackupRecord,
        BackupSets,
        CheckOutcome,
        RepositoryProof,
        RestoreOutcome,
        Sentinel,
        VerifyReport,
        VerifyRestoreInput,
        VerifyStep,
    )
    from pgha.checks.wal_chain import WAL_SEGMENT_BYTES
    from pgha.progress import Progress, StepState
    from pgha.report_text import human_bytes
    from pgha.spec import ClusterSpec, Role
    from pgha.steps import HostStep
    from pgha.workflows.policy import CONVERGE, LOCAL_WRITE, LONG_RUN, STATUS_READ
    from pgha.workflows.primary import healthy_primary
    from pgha.workflows.tracker import Tracker, failure_text


class VerificationFailed(Exception):
    """A proof failed: the reason goes into the report and the workflow's failure."""


def choose_set(sets: BackupSets, label: str | None, target_time: datetime | None) -> BackupRecord:
    """The set to restore: ``label``; else for a target time the newest set that ended
    before it (recovery cannot stop inside a backup); else the newest set.

    :raises ApplicationError: InvalidInput (non-retryable) when there is no such set.
    """
    if not sets.sets:
        raise _invalid(f"stanza {sets.stanza} has no backup set to verify; take one first")
    if label is not None:
        for s in sets.sets:
            if s.label == label:
                if target_time is not None and s.stopped > target_time:
                    raise _invalid(
                        f"set {label} ended at {s.stopped:%Y-%m-%d %H:%M:%S} UTC, after the "
                        f"target time {target_time:%Y-%m-%d %H:%M:%S} UTC: recovery cannot "
                        "stop before a backup's end; pick an older set or a later time"
                    )
                return s
        have = ", ".join(s.label for s in sets.sets)
        raise _invalid(f"no backup set {label} in stanza {sets.stanza} (it has: {have})")
    if target_time is not None:
        before = [s for s in sets.sets if s.stopped <= target_time]
        if not before:
            oldest = sets.sets[0]
            raise _invalid(
                f"no backup set ended before {target_time:%Y-%m-%d %H:%M:%S} UTC (the oldest, "
                f"{oldest.label}, ended at {oldest.stopped:%Y-%m-%d %H:%M:%S} UTC)"
            )
        return before[-1]
    return sets.sets[-1]


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidInput", non_retryable=True)


@workflow.defn(name="VerifyRestore")
class VerifyRestore:
    """Runbook: a sentinel row on the primary (with exact row counts), WAL switched and
    archived; choose the set; `pgbackrest verify` and the WAL chain from the set to the
    sentinel; restore on the verify host into scratch space; recover isolated to the
    sentinel (or the target time) and promote; prove: sentinel present (absent before
    it), pg_amcheck --heapallindexed, every page read, row counts equal; tear down;
    report."""

    def __init__(self) -> None:
        self.tracker = Tracker("verify-restore", "")

    @workflow.query(name="progress")
    def progress(self) -> Progress:
        return self.tracker.progress

    @workflow.run
    async def run(self, inp: VerifyRestoreInput) -> VerifyReport:
        spec = inp.spec
        self.tracker = Tracker("verify-restore", spec.cluster)
        self.tracker.tag_search_attributes()
        target = spec.verify_host()
        repos = spec.hosts_with(Role.backup_repo)
        if not spec.backup.enabled or len(repos) != 1 or target is None:
            raise _invalid(
                f"cluster {spec.cluster}: restore verification needs backup.enabled, one "
                "backup-repo host and a host with role verify-target in the spec"
            )
        if inp.target_time is not None and inp.target_time > workflow.now():
            raise _invalid(
                f"--target-time {inp.target_time:%Y-%m-%d %H:%M:%S} UTC is in the future"
            )
        self.spec, self.target_host = spec, target.name
        self.started = workflow.now()
        self.timings: dict[str, float] = {}
        self.checks: list[CheckOutcome] = []
        self.sizes: dict[str, int] = {}
        self.backup: BackupRecord | None = None
        self.sentinel: Sentinel | None = None
        reason = ""
        cancelled = False
        try:
            await self._verify(inp, HostStep(spec=spec, host=repos[0].name))
        except VerificationFailed as err:
            reason = str(err)
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):  # the workflow's cancellation
                reason, cancelled = "cancelled before the verification finished", True
            else:  # a host or PostgreSQL failed beyond its retries: the set is unproven
                reason = failure_text(err)
        except (CancelledError, asyncio.CancelledError):
            reason, cancelled = "cancelled before the verification finished", True
        finally:
            await self._teardown()
        report = self._report(inp, reason)
        report_id = await LOCAL_WRITE.execute(
            "reports.save_verification", report, str, summary="save the verification report"
        )
        if cancelled:
            self.tracker.done(f"cancelled; scratch copy removed (report {report_id})")
            raise asyncio.CancelledError(reason)
        if reason:
            self.tracker.done(f"FAILED: {reason}")
            raise ApplicationError(
                f"restore verification of {spec.cluster} failed: {reason} (report {report_id})",
                report,
                type="RestoreVerificationFailed",
                non_retryable=True,
            )
        assert report.backup is not None
        self.tracker.done(
            f"PASSED: set {report.backup.label} restored on {self.target_host}, "
            f"{len(self.checks)} checks passed in {self.timings['total']:.0f} s "
            f"(report {report_id})"
        )
        return report

    # ------------------------------------------------------------------ phases

    async def _verify(self, inp: VerifyRestoreInput, repo: HostStep) -> None:
        spec = inp.spec
        self.tracker.phase("sentinel")
        t = workflow.now()
        primary = await self.tracker.run(
            "primary", "a running primary", None, healthy_primary(spec),
            lambda p: (StepState.ok, f"{p} leads and runs"),
        )  # fmt: skip
        value = f"{spec.cluster}-{workflow.now():%Y%m%dT%H%M%S}-{str(workflow.uuid4())[:8]}"
        self.sentinel = sentinel = await self.tracker.run(
            "sentinel", "sentinel written, row counts pinned, WAL archived", primary,
            CONVERGE.execute("verify.write_sentinel",
                             HostStep(spec=spec, host=primary, params={"value": value}),
                             Sentinel, summary="write the sentinel"),
            lambda s: (StepState.changed, f"{s.value} in WAL {s.wal_file}; "
                       f"{len(s.row_counts)} tables counted; writers paused "
                       f"{s.write_pause_ms:.0f} ms"),
        )  # fmt: skip
        self._time("sentinel", t)

        self.tracker.phase("verify")
        sets = await STATUS_READ.execute(
            "backup.list_sets", repo, BackupSets, summary="the repository's sets"
        )
        self.backup = chosen = choose_set(sets, inp.set_label, inp.target_time)
        step = VerifyStep(
            spec=spec, host=self.target_host, backup=chosen, sentinel=sentinel,
            target_time=inp.target_time,
        )  # fmt: skip
        self.sizes.update(backup_bytes=chosen.size_bytes, repo_bytes=chosen.repo_size_bytes)
        proof = await self.tracker.run(
            "repository", f"pgbackrest verify of {chosen.label} and its WAL chain", repo.host,
            LONG_RUN.execute("verify.check_repository",
                             step.model_copy(update={"host": repo.host}), RepositoryProof,
                             summary="pgbackrest verify"),
            lambda p: (StepState.failed if p.problems else
                       StepState.warning if p.warnings else StepState.ok,
                       "; ".join(p.problems or p.warnings) or
                       f"files and WAL {', '.join(p.needed_wal)} verified"),
        )  # fmt: skip
        self.timings["verify"] = proof.seconds
        self._check(
            "repository",
            not proof.problems,
            "; ".join(proof.problems) or f"set and WAL {', '.join(proof.needed_wal)} verified",
            proof.seconds,
        )

        self.tracker.phase("restore")
        restored = await self.tracker.run(
            "restore", f"restore {chosen.label} and recover isolated", self.target_host,
            LONG_RUN.execute("verify.restore", step, RestoreOutcome, summary="restore"),
            lambda r: (StepState.ok if r.ok else StepState.failed,
                       f"restored in {r.restore_s:.0f} s, {r.wal_segments} WAL segments "
                       f"replayed in {r.recovery_s:.0f} s, {human_bytes(r.restored_bytes)}"
                       if r.ok else r.reason),
        )  # fmt: skip
        self.timings.update(restore=restored.restore_s, recovery=restored.recovery_s)
        self.sizes.update(
            restored_bytes=restored.restored_bytes,
            wal_replayed_bytes=restored.wal_segments * WAL_SEGMENT_BYTES,
        )
        self._check(
            "restore and recovery",
            restored.ok,
            restored.reason
            or f"recovered to the target and promoted ({restored.wal_segments} WAL segments)",
            restored.restore_s + restored.recovery_s,
        )

        self.tracker.phase("checks")
        t = workflow.now()
        checks = await self.tracker.run(
            "checks", "sentinel, pg_amcheck, every page, row counts", self.target_host,
            LONG_RUN.execute("verify.prove", step, list[CheckOutcome], summary="prove"),
            lambda cs: (StepState.ok if all(c.passed for c in cs) else StepState.failed,
                        "; ".join(f"{'✓' if c.passed else '✗'} {c.name}" for c in cs)),
        )  # fmt: skip
        self._time("checks", t)
        for c in checks:
            self._check(c.name, c.passed, c.detail, c.seconds)

    async def _teardown(self) -> None:
        t = workflow.now()
        step = HostStep(spec=self.spec, host=self.target_host)
        try:
            await self.tracker.run(
                "teardown", "remove the scratch copy", self.target_host,
                CONVERGE.execute("verify.teardown", step, bool, summary="teardown"),
                lambda removed: (StepState.ok, "removed" if removed else "nothing to remove"),
            )  # fmt: skip
        except Exception as err:  # reported; the verdict stands on its own
            self.checks.append(CheckOutcome(name="teardown", passed=False,
                                            detail=failure_text(err)))  # fmt: skip
        self._time("teardown", t)

    # ------------------------------------------------------------------ bookkeeping

    def _check(self, name: str, passed: bool, detail: str, seconds: float) -> None:
        self.checks.append(
            CheckOutcome(name=name, passed=passed, detail=detail, seconds=round(seconds, 2))
        )
        if not passed:
            raise VerificationFailed(f"{name}: {detail}")

    def _time(self, phase: str, since: datetime) -> None:
        self.timings[phase] = round((workflow.now() - since).total_seconds(), 2)

    def _report(self, inp: VerifyRestoreInput, reason: str) -> VerifyReport:
        finished = workflow.now()
        self.timings["total"] = round((finished - self.started).total_seconds(), 2)
        spec: ClusterSpec = self.spec
        return VerifyReport(
            cluster=spec.cluster,
            stanza=spec.stanza,
            workflow_id=workflow.info().workflow_id,
            started_at=self.started,
            finished_at=finished,
            passed=not reason,
            reason=reason,
            target_host=self.target_host,
            scratch_path=f"{spec.backup.verify.scratch_path.rstrip('/')}/{spec.cluster}",
            backup=self.backup,
            target_time=inp.target_time,
            sentinel=self.sentinel,
            sentinel_expected=(
                inp.target_time is None
                or self.sentinel is None
                or inp.target_time >= self.sentinel.written_at
            ),
            checks=self.checks,
            timings=self.timings,
            sizes=self.sizes,
        )
