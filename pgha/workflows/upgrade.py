"""Upgrade: a rolling package upgrade (PostgreSQL minor versions first), one member at a
time, with the writes down for one switchover.

It stops at the first member that does not come back healthy, leaves every other member
as it is, and waits for an operator (`pgha resume`, `pgha rollback`, `pgha abort`); no
second member is ever taken down while one is unhealthy.
"""

from __future__ import annotations

import asyncio
import json

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.probe_verdict import judge
    from pgha.checks.rolling_cost import rolling_cost
    from pgha.checks.rolling_order import NoRollingOrder, RollingPlan, rolling_order
    from pgha.drill_models import ProbeLog, Verdict
    from pgha.progress import StepState
    from pgha.rolling_models import (
        Decision,
        DecisionAction,
        MemberOutcome,
        MemberVersions,
        ResolvedVersions,
        UpgradeInput,
        UpgradeReport,
        server_version_of,
    )
    from pgha.spec import ClusterSpec, Role
    from pgha.steps import HostStep, StepResult
    from pgha.workflows.policy import HOST_CHECK, LOCAL_WRITE
    from pgha.workflows.tracker import failure_text

from pgha.workflows.rolling_steps import (
    MEMBER_WORK,
    SETTLE_S,
    RollingSteps,
    RollingStopped,
    cancelled,
    first_member,
)


@workflow.defn(name="Upgrade")
class Upgrade(RollingSteps):
    """Runbook: the cluster must be whole and no client transaction long; resolve the
    versions from the hosts' apt sources; start the probe; for each replica (the
    switchover's candidate last): check the cluster is whole, tag the member
    nofailover/noloadbalance, install, CHECKPOINT and restart through Patroni, wait until
    it streams within the lag bound on the new version, untag; then switch over to the
    candidate and do the old primary the same way; check every member's version; stop the
    probe and report the write downtime. A member that does not come back stops the
    upgrade there until an operator decides."""

    def __init__(self) -> None:
        self._init_rolling("upgrade")
        self.outcomes: list[MemberOutcome] = []

    @workflow.update(name="decide")
    def decide(self, decision: Decision) -> str:
        self.decision = decision
        member = self.blocked.member if self.blocked else "?"
        return {
            DecisionAction.resume: f"{member} is checked again; the upgrade goes on if healthy",
            DecisionAction.rollback: f"{member} goes back to its old version; then it stops",
            DecisionAction.abort: f"the upgrade stops at {member}",
        }[decision.action]

    @decide.validator
    def _only_while_blocked(self, decision: Decision) -> None:
        if self.blocked is None or self.decision is not None:
            raise ValueError("this upgrade is not waiting for a decision")

    @workflow.run
    async def run(self, inp: UpgradeInput) -> UpgradeReport:
        spec = inp.spec
        self._open(spec, "gate", inp.max_lag_bytes, inp.member_timeout_s)
        try:
            view = await self._whole(spec, "gate")
            plan = rolling_order(view, [h.name for h in spec.hosts_with(Role.postgres)])
            resolved = await self._resolve(spec, plan.primary, inp.packages, inp.allow_downgrade)
            before = await self._versions(spec, resolved)
            todo = [m.member for m in before if self._needs(m, resolved)]
            if todo:
                await self._long_transactions(spec, inp)
        except (ActivityError, NoRollingOrder) as err:
            why = failure_text(err) if isinstance(err, ActivityError) else str(err)
            self.tracker.done(f"REFUSED: {why}")
            raise ApplicationError(f"upgrade refused, nothing was changed: {why}",
                                   type="UpgradeRefused", non_retryable=True) from None  # fmt: skip
        if not todo:
            return self._finish(inp, resolved, before, before, plan, plan.primary, None, None,
                                "")  # fmt: skip
        self.tracker.phase("probe")
        probe = self._start_probe(spec, inp.rate, "upgrade")
        await workflow.sleep(SETTLE_S)
        reason, was_cancelled = "", False
        old = {m.member: m for m in before}
        try:
            for name in plan.replicas:
                if name in todo:
                    await self._member(spec, inp, name, resolved, old[name])
            if plan.primary in todo:
                await self._switchover(spec, plan.primary, plan.candidate)
                await self._member(spec, inp, plan.primary, resolved, old[plan.primary])
        except RollingStopped as stop:
            reason = str(stop)
        except (ActivityError, asyncio.CancelledError) as err:
            was_cancelled = cancelled(err)
            if not was_cancelled and isinstance(err, ActivityError):
                reason = failure_text(err)
            else:
                reason = self._cancel_reason()
        finally:
            log = await self._end_probe(probe)
        self.tracker.phase("verify")
        after = await self._versions(spec, resolved)
        if not reason:
            behind = [m.member for m in after if self._needs(m, resolved)]
            if behind:
                reason = f"not on the target version at the end: {', '.join(behind)}"
        verdict: Verdict | None = None
        try:
            verdict = judge(log)
        except ValueError as err:
            reason = reason or str(err)
        if not reason and verdict is not None and not verdict.safe:
            reason = f"writes went wrong: {len(verdict.lost)} acknowledged lost"
        leader = await self._final_leader(spec)
        report = self._finish(inp, resolved, before, after, plan, leader, log, verdict, reason)
        await LOCAL_WRITE.execute("reports.save_upgrade", report, str, summary="save the report")
        if was_cancelled:
            raise asyncio.CancelledError(reason)
        if not report.passed:
            raise ApplicationError(f"upgrade of {spec.cluster} stopped: {report.reason}",
                                   report, type="UpgradeStopped", non_retryable=True)  # fmt: skip
        return report

    # ------------------------------------------------------------------ gate

    async def _versions(self, spec: ClusterSpec, r: ResolvedVersions) -> list[MemberVersions]:
        step = first_member(spec, {"names": ",".join(r.target)})
        return await HOST_CHECK.execute("rolling.versions", step, list[MemberVersions],
                                        summary="what every member runs")  # fmt: skip

    @staticmethod
    def _needs(m: MemberVersions, r: ResolvedVersions) -> bool:
        """Whether ``m`` still has a package or a running server off the target."""
        if any(m.packages.get(n, "").removeprefix("0:") != v.removeprefix("0:")
               for n, v in r.target.items()):  # fmt: skip
            return True
        server = server_version_of(r.target)
        return bool(server) and m.server != server

    async def _long_transactions(self, spec: ClusterSpec, inp: UpgradeInput) -> None:
        for h in spec.hosts_with(Role.postgres):
            step = HostStep(spec=spec, host=h.name,
                            params={"older_than_s": str(inp.long_transaction_s)})  # fmt: skip
            await self.tracker.run(
                f"long-tx-{h.name}", "no long transaction", h.name,
                HOST_CHECK.execute("rolling.long_transactions", step, StepResult,
                                   summary="long transactions"),
                lambda r: (StepState.ok, r.summary),
            )  # fmt: skip

    # ------------------------------------------------------------------ one member

    async def _member(self, spec: ClusterSpec, inp: UpgradeInput, name: str,
                      r: ResolvedVersions, old: MemberVersions) -> None:  # fmt: skip
        """The member step: never while another member is unhealthy; drained while it is
        worked on; undrained only once it is healthy on the new version."""
        self.tracker.phase(f"member {name}")
        await self._whole(spec, f"{name}-whole")
        async with self._drained(spec, name):
            await self._install(spec, name, r.target, f"{name}-install")
            try:
                await self._restart_and_check(spec, inp, name, r, f"{name}")
            except ActivityError as err:
                if cancelled(err):
                    raise
                await self._stopped(spec, inp, name, r, old, failure_text(err))
        self.outcomes.append(MemberOutcome(member=name, result="upgraded",
                                           version_before=old.server,
                                           version_after=server_version_of(r.target)))  # fmt: skip

    async def _restart_and_check(self, spec: ClusterSpec, inp: UpgradeInput, name: str,
                                 r: ResolvedVersions, key: str) -> None:  # fmt: skip
        await self._restart_member(spec, name, key, "rolling.restart")
        running = {m.member: m for m in await self._versions(spec, r)}[name]
        if self._needs(running, r):
            raise RollingStopped(f"{name} runs {running.server or 'nothing'} after its "
                                 f"restart, not {server_version_of(r.target)}")  # fmt: skip

    async def _install(self, spec: ClusterSpec, name: str, packages: dict[str, str],
                       key: str) -> None:  # fmt: skip
        step = HostStep(spec=spec, host=name, params={"packages": json.dumps(packages)})
        await self.tracker.run(
            key, "install " + ", ".join(f"{n}={v}" for n, v in packages.items()), name,
            MEMBER_WORK.execute("rolling.install", step, StepResult, summary=f"install on {name}"),
            lambda s: (StepState.changed if s.changed else StepState.ok, s.summary),
        )  # fmt: skip

    async def _stopped(self, spec: ClusterSpec, inp: UpgradeInput, name: str,
                       r: ResolvedVersions, old: MemberVersions, why: str) -> None:  # fmt: skip
        """Wait for an operator while ``name`` is unhealthy; return once it is healthy on
        the new version (resume); raise RollingStopped after a rollback or an abort."""
        attempt = 0
        while True:
            attempt += 1
            choices = "`pgha resume`, `pgha rollback` or `pgha abort`"
            decision = await self._decision(spec, name, why, attempt, choices)
            if decision.action is DecisionAction.abort:
                self.outcomes.append(MemberOutcome(member=name, result="failed", detail=why))
                raise RollingStopped(
                    f"stopped at {name} ({why}); {name} stays drained (nofailover, "
                    "noloadbalance); no other member was touched"
                )
            try:
                if decision.action is DecisionAction.resume:
                    await self._restart_and_check(spec, inp, name, r, f"{name}-again-{attempt}")
                    return
                await self._install(spec, name, old.packages, f"{name}-rollback-{attempt}")
                back = ResolvedVersions(target=old.packages, installed=old.packages)
                await self._restart_and_check(spec, inp, name, back, f"{name}-back-{attempt}")
            except (ActivityError, RollingStopped) as err:
                why = failure_text(err) if isinstance(err, ActivityError) else str(err)
                continue
            await self._drain(spec, name, False)
            self.outcomes.append(MemberOutcome(member=name, result="rolled back",
                                               version_before=old.server,
                                               version_after=old.server, detail=why))  # fmt: skip
            raise RollingStopped(f"{name} was rolled back to {old.server} after: {why}; the "
                                 "upgrade stopped there, no other member was touched")  # fmt: skip

    # ------------------------------------------------------------------ report

    def _finish(
        self, inp: UpgradeInput, r: ResolvedVersions, before: list[MemberVersions],
        after: list[MemberVersions], plan: RollingPlan, leader: str, log: ProbeLog | None,
        verdict: Verdict | None, reason: str,
    ) -> UpgradeReport:  # fmt: skip
        done_with = {o.member for o in self.outcomes}
        outcomes = [*self.outcomes] + [
            MemberOutcome(member=m.member, result="already", version_before=m.server,
                          version_after=m.server)
            for m in before if m.member not in done_with and not self._needs(m, r)
        ]  # fmt: skip
        cost = rolling_cost(log) if log is not None else None
        report = UpgradeReport(
            cluster=inp.spec.cluster, workflow_id=workflow.info().workflow_id,
            started_at=self.started, finished_at=workflow.now(), passed=not reason,
            reason=reason, packages=r.target,
            versions_before={m.member: m.server for m in before},
            versions_after={m.member: m.server for m in after},
            members=outcomes, old_leader=plan.primary, new_leader=leader, cost=cost,
            verdict=verdict, decisions=self.decisions, probe_run=self.probe_run,
        )  # fmt: skip
        if report.passed:
            down = f"writes down {cost.write_down_s:.1f} s in total" if cost else "nothing to do"
            self.tracker.done(f"every member on {server_version_of(r.target) or r.target}; {down}")
        else:
            self.tracker.done(f"STOPPED: {reason}")
        return report
