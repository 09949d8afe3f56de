"""Reconfigure: bring the hosts' settings to the spec, restarting only what must restart.

Files first (services reload: HAProxy hitlessly, keepalived keeping the VIP, pgbouncer
keeping its clients, Patroni re-reading its file and reloading PostgreSQL), then the
cluster-wide settings in one write to the DCS, then the members Patroni says need a
restart, one at a time: replicas first and the primary by switchover, or the primary
first (in place) when a setting standbys must keep at least as high as the primary is
lowered.
"""

from __future__ import annotations

import asyncio
import json

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.probe_verdict import judge
    from pgha.checks.rolling_cost import rolling_cost
    from pgha.checks.rolling_order import NoRollingOrder, rolling_order
    from pgha.drill_models import ProbeLog
    from pgha.progress import StepState
    from pgha.reconfigure_models import (
        FileChange,
        ReconfigureInput,
        ReconfigurePlan,
        ReconfigureReport,
    )
    from pgha.rolling_models import Decision, DecisionAction
    from pgha.spec import ClusterSpec, Role
    from pgha.steps import HostStep, StepResult
    from pgha.workflows.policy import CONVERGE, HOST_CHECK, LOCAL_WRITE
    from pgha.workflows.tracker import failure_text

from pgha.workflows.rolling_steps import (
    SETTLE_S,
    RollingSteps,
    RollingStopped,
    cancelled,
    first_member,
)

#: The converge activity that applies each service's file (provision's own: it reloads).
APPLY = {
    "patroni": "patroni.ensure_config",
    "haproxy": "haproxy.ensure_config",
    "keepalived": "keepalived.ensure_config",
    "pgbouncer": "pgbouncer.ensure_config",
    "pgbackrest": "pgbackrest.ensure_config",
}


@workflow.defn(name="Reconfigure")
class Reconfigure(RollingSteps):
    """Runbook: the cluster must be whole; compare the spec with the DCS and the hosts and
    show the plan (a dry run stops here); apply the files (reloads); write the DCS
    changes; ask Patroni which members now need a restart; restart those one at a time
    through Patroni with the probe running (drained replicas first, the candidate last,
    a switchover, then the old primary; or the primary first in place when a standby
    minimum is lowered); stop at a member that does not come back and wait for an
    operator; report."""

    def __init__(self) -> None:
        self._init_rolling("reconfigure")
        self.restarted: list[str] = []
        self.switched = ""

    @workflow.update(name="decide")
    def decide(self, decision: Decision) -> str:
        self.decision = decision
        member = self.blocked.member if self.blocked else "?"
        if decision.action is DecisionAction.resume:
            return f"{member} is checked again; the reconfigure goes on if healthy"
        return f"the reconfigure stops at {member}"

    @decide.validator
    def _only_while_blocked(self, decision: Decision) -> None:
        if self.blocked is None or self.decision is not None:
            raise ValueError("this reconfigure is not waiting for a decision")
        if decision.action is DecisionAction.rollback:
            raise ValueError("a reconfigure has no rollback: put the old values back in the "
                             "spec and run reconfigure again, or resume or abort")  # fmt: skip

    @workflow.run
    async def run(self, inp: ReconfigureInput) -> ReconfigureReport:
        spec = inp.spec
        self._open(spec, "plan", inp.max_lag_bytes, inp.member_timeout_s)
        try:
            await self._whole(spec, "gate")
            plan = await self.tracker.run(
                "plan", "compare the spec with the DCS and the hosts", None,
                HOST_CHECK.execute("reconfigure.plan", first_member(spec, {}), ReconfigurePlan,
                                   summary="plan"),
                lambda p: (StepState.ok, _plan_line(p)),
            )  # fmt: skip
        except ActivityError as err:
            why = failure_text(err)
            self.tracker.done(f"REFUSED: {why}")
            raise ApplicationError(
                f"reconfigure refused, nothing was changed: {why}",
                type="ReconfigureRefused",
                non_retryable=True,
            ) from None
        if inp.dry_run or plan.empty:
            return await self._end(inp, self._finish(inp, plan, "", None))
        self.tracker.phase("apply files")
        for f in plan.files:
            await self._apply_file(spec, f)
        dcs = [c for c in plan.changes if c.scope == "dcs"]
        if dcs:
            self.tracker.phase("apply DCS")
            await self.tracker.run(
                "dcs", "cluster-wide settings (patronictl edit-config)", plan.leader,
                CONVERGE.execute("reconfigure.apply_dcs", HostStep(spec=spec, host=plan.leader,
                                 params={"changes": json.dumps([c.model_dump() for c in dcs])}),
                                 StepResult, summary="DCS"),
                lambda s: (StepState.changed if s.changed else StepState.ok, s.summary),
            )  # fmt: skip
        # Patroni takes a reloaded file or a DCS change at its next HA loop (a SIGHUP does
        # not wake it): wait that long before asking what is pending, and before reporting
        # the new values in effect.
        patroni = bool(dcs) or any(f.service == "patroni" for f in plan.files)
        pending = await self.tracker.run(
            "pending", "members with a pending restart", None,
            HOST_CHECK.execute("reconfigure.pending_restarts",
                               first_member(spec, {"expect": "yes" if patroni else "no"}),
                               list[str], summary="pending restarts"),
            lambda p: (StepState.ok, ", ".join(p) or "none"),
        )  # fmt: skip
        if not pending:
            return await self._end(inp, self._finish(inp, plan, "", None))
        return await self._restarts(inp, plan, pending)

    async def _apply_file(self, spec: ClusterSpec, f: FileChange) -> None:
        await self.tracker.run(
            f"file-{f.service}-{f.host}", f"{f.path} ({f.service}: {f.apply})", f.host,
            CONVERGE.execute(APPLY[f.service], HostStep(spec=spec, host=f.host), StepResult,
                             summary=f"{f.service} on {f.host}"),
            lambda s: (StepState.changed if s.changed else StepState.ok, s.summary),
        )  # fmt: skip

    async def _restarts(
        self, inp: ReconfigureInput, plan: ReconfigurePlan, pending: list[str]
    ) -> ReconfigureReport:
        spec = inp.spec
        self.tracker.phase("restarts")
        view = await self._whole(spec, "restart-gate")
        try:
            order = rolling_order(view, [h.name for h in spec.hosts_with(Role.postgres)])
        except NoRollingOrder as err:
            return await self._end(inp, self._finish(inp, plan, f"restarts not done: {err}", None))
        probe = self._start_probe(spec, inp.rate, "reconfigure")
        await workflow.sleep(SETTLE_S)
        reason = ""
        try:
            if plan.lowered and order.primary in pending:
                # Standbys must keep these at least as high as the primary: lower it first.
                await self._member(spec, order.primary, drain=False)
                for name in order.replicas:
                    await self._member(spec, name)
            else:
                for name in order.replicas:
                    if name in pending:
                        await self._member(spec, name)
                if order.primary in pending:
                    await self._switchover(spec, order.primary, order.candidate)
                    self.switched = f"{order.primary} -> {order.candidate}"
                    await self._member(spec, order.primary)
        except RollingStopped as stop:
            reason = str(stop)
        except (ActivityError, asyncio.CancelledError) as err:
            if cancelled(err):
                log = await self._end_probe(probe)
                await self._store(self._judged(inp, plan, self._cancel_reason(), log))
                raise asyncio.CancelledError(self._cancel_reason()) from None
            reason = failure_text(err) if isinstance(err, ActivityError) else str(err)
        log = await self._end_probe(probe)
        return await self._end(inp, self._judged(inp, plan, reason, log))

    async def _member(self, spec: ClusterSpec, name: str, drain: bool = True) -> None:
        """One member's restart; the primary in place is not drained (it serves writes)."""
        self.tracker.phase(f"member {name}")
        await self._whole(spec, f"{name}-whole")
        async with self._drained(spec, name, drain):
            attempt = 0
            while True:
                try:
                    await self._restart(spec, name, f"{name}-{attempt}")
                    break
                except ActivityError as err:
                    if cancelled(err):
                        raise
                    attempt += 1
                    decision = await self._decision(spec, name, failure_text(err), attempt,
                                                    "`pgha resume` or `pgha abort`")  # fmt: skip
                    if decision.action is not DecisionAction.resume:
                        raise RollingStopped(
                            f"stopped at {name}; it stays drained (nofailover, "
                            "noloadbalance); no other member was restarted after it"
                        ) from None
        self.restarted.append(name)

    async def _restart(self, spec: ClusterSpec, name: str, key: str) -> None:
        await self._restart_member(spec, name, key, "reconfigure.restart_pending")

    def _judged(self, inp: ReconfigureInput, plan: ReconfigurePlan, reason: str,
                log: ProbeLog) -> ReconfigureReport:  # fmt: skip
        """The report after restarts, with the probe's verdict on the writes."""
        try:
            verdict = judge(log)
        except ValueError as err:
            verdict, reason = None, reason or str(err)
        if not reason and verdict is not None and not verdict.safe:
            reason = f"writes went wrong: {len(verdict.lost)} acknowledged lost"
        report = self._finish(inp, plan, reason, log)
        if verdict is not None:
            report = report.model_copy(update={"lost": len(verdict.lost)})
        return report

    async def _store(self, report: ReconfigureReport) -> None:
        # Runs recorded before reports were stored replay without the save.
        if workflow.patched("reconfigure-report-store"):
            await LOCAL_WRITE.execute("reports.save_reconfigure", report, str,
                                      summary="save the report")  # fmt: skip

    async def _end(self, inp: ReconfigureInput, report: ReconfigureReport) -> ReconfigureReport:
        """Store the report; a stopped reconfigure fails with it attached."""
        await self._store(report)
        if not report.passed:
            raise ApplicationError(
                f"reconfigure of {inp.spec.cluster} stopped: {report.reason}",
                report,
                type="ReconfigureStopped",
                non_retryable=True,
            )
        return report

    def _finish(self, inp: ReconfigureInput, plan: ReconfigurePlan, reason: str,
                log: ProbeLog | None) -> ReconfigureReport:  # fmt: skip
        cost = rolling_cost(log) if log is not None else None
        report = ReconfigureReport(
            cluster=inp.spec.cluster, workflow_id=workflow.info().workflow_id,
            started_at=self.started, finished_at=workflow.now(), passed=not reason,
            reason=reason, dry_run=inp.dry_run, plan=plan, restarted=self.restarted,
            switchover=self.switched, write_down_s=cost.write_down_s if cost else None,
            failed_reads=cost.failed_reads if cost else None, decisions=self.decisions,
        )  # fmt: skip
        if inp.dry_run:
            self.tracker.done(f"dry run: {_plan_line(plan)}; nothing was changed")
        elif report.passed:
            restarts = f"restarted {', '.join(self.restarted)}" if self.restarted else "no restart"
            self.tracker.done(f"{_plan_line(plan)}; {restarts}")
        else:
            self.tracker.done(f"STOPPED: {reason}")
        return report


def _plan_line(plan: ReconfigurePlan) -> str:
    if plan.empty:
        return "nothing differs from the spec"
    restart = sum(1 for c in plan.changes if c.restart)
    return (f"{len(plan.changes)} setting(s) ({restart} need a restart), "
            f"{len(plan.files)} file(s)")  # fmt: skip
