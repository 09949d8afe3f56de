"""Switchover: hand the primary role to a chosen replica (or the best one), on a whole
cluster, with the probe measuring what the writers saw."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.probe_verdict import judge
    from pgha.checks.rolling_cost import rolling_cost
    from pgha.checks.rolling_order import NoRollingOrder, rolling_order
    from pgha.rolling_models import SwitchoverInput, SwitchoverReport
    from pgha.spec import Role
    from pgha.status_models import REPLICA_ROLES
    from pgha.workflows.tracker import failure_text

from pgha.workflows.rolling_steps import SETTLE_S, RollingSteps, RollingStopped, leader_of


@workflow.defn(name="Switchover")
class Switchover(RollingSteps):
    """Runbook: the cluster must be whole; the target must be a streaming replica that
    Patroni may promote; start the probe; switch over; check the cluster is whole with the
    target leading; stop the probe; report the write gap."""

    def __init__(self) -> None:
        self._init_rolling("switchover")

    @workflow.run
    async def run(self, inp: SwitchoverInput) -> SwitchoverReport:
        spec = inp.spec
        self._open(spec, "gate", inp.max_lag_bytes)
        try:
            view = await self._whole(spec, "gate")
            plan = rolling_order(view, [h.name for h in spec.hosts_with(Role.postgres)])
        except (ActivityError, NoRollingOrder) as err:
            why = failure_text(err) if isinstance(err, ActivityError) else str(err)
            self.tracker.done(f"REFUSED: {why}")
            raise ApplicationError(f"switchover refused: {why}", type="SwitchoverRefused",
                                   non_retryable=True) from None  # fmt: skip
        target = inp.to or plan.candidate
        member = next((m for m in view.members if m.name == target), None)
        if member is None or member.role not in REPLICA_ROLES:
            what = "not a member" if member is None else f"the {member.role}"
            self.tracker.done(f"REFUSED: {target} is {what}")
            raise ApplicationError(
                f"switchover refused: {target} is {what}; choose one of the replicas: "
                + ", ".join(m.name for m in view.members if m.role in REPLICA_ROLES),
                type="SwitchoverRefused", non_retryable=True,
            )  # fmt: skip
        probe = self._start_probe(spec, inp.rate, "switchover")
        await workflow.sleep(SETTLE_S)
        reason = ""
        try:
            await self._switchover(spec, plan.primary, target)
        except RollingStopped as err:
            reason = str(err)
        finally:
            log = await self._end_probe(probe)
        if reason:
            self.tracker.done(f"FAILED: {reason}")
            raise ApplicationError(reason, type="SwitchoverFailed", non_retryable=True)
        cost, verdict = rolling_cost(log), judge(log)
        self.tracker.done(f"{plan.primary} -> {target}: writes down {cost.write_down_s:.1f} s, "
                          f"{len(verdict.lost)} acknowledged lost")  # fmt: skip
        return SwitchoverReport(
            cluster=spec.cluster, workflow_id=workflow.info().workflow_id, started_at=self.started,
            finished_at=workflow.now(), old_leader=plan.primary,
            new_leader=leader_of(await self._whole(spec, "end-whole", within=60)),
            cost=cost, verdict=verdict,
        )  # fmt: skip
