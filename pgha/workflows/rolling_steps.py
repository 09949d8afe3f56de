"""The steps rolling operations (Upgrade, Reconfigure) share, as a base class of their
workflows: the cluster-is-whole gate, draining a member, the one switchover, the probe,
and waiting for an operator's decision. Deterministic.

The workflows keep their own query and update handlers (`blocked`, `decide`, `probe_done`);
the state those read lives here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from pgha.drill_models import ProbeInput, ProbeLog
    from pgha.progress import Progress, StepState
    from pgha.rolling_models import Blocked, Decision, ResolvedVersions
    from pgha.spec import ClusterSpec, Role
    from pgha.status_models import LEADER_ROLES, PatroniStatus
    from pgha.steps import HostStep, StepResult
    from pgha.workflows.policy import CONVERGE, ActivityPolicy
    from pgha.workflows.tracker import Tracker, failure_text

#: Waiting for the cluster to be whole: the activity polls and bounds itself; a failure
#: names what is wrong and is the workflow's to judge, not something to retry.
HEALTH = ActivityPolicy(
    start_to_close=timedelta(minutes=10),
    heartbeat=timedelta(seconds=20),
    retry=RetryPolicy(maximum_attempts=2, non_retryable_error_types=["NotHealed"]),
)

#: A package install or a restart: apt's lock and the network are retried; a restart that
#: did not bring PostgreSQL back is not (the member is stopped at instead).
MEMBER_WORK = ActivityPolicy(
    start_to_close=timedelta(minutes=15),
    heartbeat=timedelta(seconds=30),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=4,
        non_retryable_error_types=["RestartFailed", "PackageNotFound", "InvalidStepInput"],
    ),
)

#: The probe runs through the whole operation, an operator's pause included, up to this.
PROBE_MAX_S = 2 * 3600.0
#: Probe time before the first change and after the last.
SETTLE_S = 3.0


class RollingStopped(Exception):
    """The operation stopped at a member (an operator's abort or rollback, a failed
    switchover): the message says where and what state it left."""


class RollingSteps:
    """State and steps of a rolling operation. Subclasses set ``max_lag_bytes`` and
    ``member_timeout_s`` before the first step."""

    tracker: Tracker
    max_lag_bytes: int
    member_timeout_s: float

    # Every rolling operation answers these (Temporal takes handlers from base classes).
    @workflow.query(name="progress")
    def progress(self) -> Progress:
        return self.tracker.progress

    @workflow.query(name="probe_done")
    def probe_done(self) -> bool:
        """Read by the probe activity: stop writing."""
        return self.done

    @workflow.query(name="blocked")
    def blocked_at(self) -> Blocked | None:
        """Where the operation waits for an operator's decision, if it does."""
        return self.blocked

    def _init_rolling(self, operation: str) -> None:
        self.tracker = Tracker(operation, "")
        self.done = False
        self.blocked: Blocked | None = None
        self.decision: Decision | None = None
        self.decisions: list[Decision] = []
        self.probe_run = ""
        #: What a cancel left behind (the member being worked on undrained, or not).
        self.cancel_note = ""

    def _open(self, spec: ClusterSpec, phase: str, max_lag_bytes: int = 16 * 1024 * 1024,
              member_timeout_s: float = 180.0) -> None:  # fmt: skip
        """The run's start: progress for this cluster (and its search attributes), the
        bounds every step checks against, the first phase."""
        self.tracker = Tracker(self.tracker.progress.operation, spec.cluster)
        self.tracker.tag_search_attributes()
        self.started = workflow.now()
        self.max_lag_bytes, self.member_timeout_s = max_lag_bytes, member_timeout_s
        self.tracker.phase(phase)

    async def _whole(self, spec: ClusterSpec, key: str, within: float = 30.0) -> PatroniStatus:
        """Every member runs and streams within the lag bound, one leader runs."""
        params = {"within_s": f"{within:g}", "max_lag": str(self.max_lag_bytes)}
        return await self.tracker.run(
            key, "every member streaming", None,
            HEALTH.execute("drill.wait_healthy", first_member(spec, params), PatroniStatus,
                           summary="the cluster is whole"),
            lambda v: (StepState.ok, f"{leader_of(v)} leads, all streaming"),
        )  # fmt: skip

    async def _restart_member(self, spec: ClusterSpec, name: str, key: str,
                              activity: str) -> None:  # fmt: skip
        """``activity`` restarts ``name`` (bounded by the member timeout); then the cluster
        must be whole again within that bound."""
        within = {"within_s": f"{self.member_timeout_s:g}"}
        await self._on(spec, name, activity, f"{key}-restart", within, MEMBER_WORK)
        await self._whole(spec, f"{key}-healthy", within=self.member_timeout_s)

    async def _drain(self, spec: ClusterSpec, name: str, drained: bool) -> None:
        """Tag ``name`` nofailover + noloadbalance (or untag it), until the DCS shows it."""
        word = "yes" if drained else "no"
        n = sum(1 for s in self.tracker.progress.steps if s.key.startswith(f"{name}-drain"))
        await self.tracker.run(
            f"{name}-drain-{n}", "drain (nofailover, noloadbalance)" if drained else "undrain",
            name,
            CONVERGE.execute("rolling.set_drained", HostStep(spec=spec, host=name,
                             params={"drained": word}), StepResult, summary=f"drained={word}"),
            lambda s: (StepState.changed if s.changed else StepState.ok, s.summary),
        )  # fmt: skip

    @asynccontextmanager
    async def _drained(self, spec: ClusterSpec, name: str, drain: bool = True
                       ) -> AsyncIterator[None]:  # fmt: skip
        """``name`` drained for the block and undrained when the block succeeds; an error
        leaves it drained (the member stopped at). A cancel (`pgha cancel`) in the block
        undrains it once the cluster is whole again, or leaves it drained when it is not;
        :attr:`cancel_note` says which. ``drain=False``: the block alone (the primary
        restarted in place serves writes, so it is never drained)."""
        if not drain:
            yield
            return
        try:
            await self._drain(spec, name, True)
            yield
        except BaseException as err:
            if cancelled(err):
                self.cancel_note = await self._release(spec, name)
            raise
        await self._drain(spec, name, False)

    async def _release(self, spec: ClusterSpec, name: str) -> str:
        """After a cancel in ``name``'s step (its restart may still be finishing on the
        host): undrain it once the cluster is whole, or say why it stays drained."""
        stays = f"{name} stays drained (nofailover, noloadbalance)"
        if self.blocked is not None and self.blocked.member == name:
            return f"{stays}: it was unhealthy ({self.blocked.reason})"
        try:
            await self._whole(spec, f"{name}-after-cancel", within=self.member_timeout_s)
        except ActivityError as err:
            return f"{stays}: not whole after the cancel ({failure_text(err)})"
        await self._drain(spec, name, False)
        return f"{name} was undrained: the cluster was whole again after the cancel"

    def _cancel_reason(self) -> str:
        return "cancelled by an operator" + (f"; {self.cancel_note}" if self.cancel_note else "")

    async def _switchover(self, spec: ClusterSpec, primary: str, candidate: str) -> None:
        """Hand the primary role to ``candidate``: the one write gap.

        :raises RollingStopped: it failed, or another member leads afterwards.
        """
        self.tracker.phase("switchover")
        await self._whole(spec, "switchover-whole")
        step = HostStep(spec=spec, host=primary, params={"candidate": candidate})
        try:
            await self.tracker.run(
                "switchover", f"switchover {primary} -> {candidate}", primary,
                CONVERGE.execute("rolling.switchover", step, StepResult, summary="switchover"),
                lambda s: (StepState.changed if s.changed else StepState.ok, s.summary),
            )  # fmt: skip
            view = await self._whole(spec, "switchover-healthy", within=self.member_timeout_s)
        except ActivityError as err:
            raise RollingStopped(
                f"the switchover to {candidate} failed: {failure_text(err)}; {primary} was "
                "left as it was"
            ) from None
        if leader_of(view) != candidate:
            raise RollingStopped(f"after the switchover {leader_of(view)} leads, not "
                                 f"{candidate}; {primary} was left as it was")  # fmt: skip

    async def _final_leader(self, spec: ClusterSpec) -> str:
        try:
            return leader_of(await self._whole(spec, "end-whole", within=60))
        except ActivityError:
            return ""

    def _start_probe(
        self, spec: ClusterSpec, rate: float, what: str
    ) -> workflow.ActivityHandle[ProbeLog]:
        self.probe_run = f"{spec.cluster}-{what}-{str(workflow.uuid4())[:8]}"
        return workflow.start_activity(
            "drill.probe",
            ProbeInput(spec=spec, rate=rate, run=self.probe_run, max_s=PROBE_MAX_S,
                       workflow_id=workflow.info().workflow_id),
            result_type=ProbeLog,
            start_to_close_timeout=timedelta(seconds=PROBE_MAX_S + 900),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
            summary="probe: writes and reads through the cluster's endpoints",
        )  # fmt: skip

    async def _resolve(self, spec: ClusterSpec, host: str, packages: dict[str, str],
                       allow_downgrade: bool) -> ResolvedVersions:  # fmt: skip
        """The exact versions of ``packages`` from ``host``'s apt sources."""
        params = {"packages": json.dumps(packages),
                  "allow_downgrade": "yes" if allow_downgrade else "no"}  # fmt: skip
        return await self.tracker.run(
            "resolve", "versions from the apt sources", host,
            CONVERGE.execute("rolling.resolve_versions", HostStep(spec=spec, host=host,
                             params=params), ResolvedVersions, summary="resolve versions"),
            lambda r: (StepState.ok, ", ".join(f"{n} {v}" for n, v in r.target.items())),
        )  # fmt: skip

    async def _on(
        self, spec: ClusterSpec, host: str, activity: str, key: str, params: dict[str, str],
        policy: ActivityPolicy = CONVERGE,
    ) -> StepResult:  # fmt: skip
        """One step-result activity on ``host`` as a progress step."""
        return await self.tracker.run(
            key, activity, host,
            policy.execute(activity, HostStep(spec=spec, host=host, params=params), StepResult,
                           summary=f"{activity} on {host}"),
            lambda s: (StepState.changed if s.changed else StepState.ok, s.summary),
        )  # fmt: skip

    async def _end_probe(self, probe: workflow.ActivityHandle[ProbeLog]) -> ProbeLog:
        """Let the probe see the settled cluster a moment, then stop it; its log."""
        await workflow.sleep(SETTLE_S)
        self.done = True
        return await probe

    async def _decision(self, spec: ClusterSpec, name: str, why: str, attempt: int,
                        choices: str) -> Decision:  # fmt: skip
        """Wait, as long as it takes, for an operator's decision about ``name``."""
        self.blocked = Blocked(member=name, reason=why, since=workflow.now())
        self.tracker.phase(f"waiting for an operator: {name} is unhealthy")
        key = f"{name}-decision-{attempt}"
        self.tracker.add(key, "an operator's decision", name)
        self.tracker.start(key, f"{why}; {choices} --cluster {spec.cluster}")
        await workflow.wait_condition(lambda: self.decision is not None)
        decision = self.decision
        assert decision is not None
        self.decision, self.blocked = None, None
        self.decisions.append(decision)
        note = f": {decision.note}" if decision.note else ""
        self.tracker.finish(key, StepState.ok,
                            f"{decision.action.value} by {decision.by or '?'}{note}")  # fmt: skip
        return decision


def cancelled(err: BaseException) -> bool:
    """Whether ``err`` is the workflow's cancellation, as it reaches an await: directly, or
    as the cause of the activity it cancelled."""
    return isinstance(err, asyncio.CancelledError) or (
        isinstance(err, ActivityError) and isinstance(err.cause, CancelledError)
    )


def leader_of(view: PatroniStatus | None) -> str:
    if view is None:
        return ""
    return next((m.name for m in view.members if m.role in LEADER_ROLES), "")


def first_member(spec: ClusterSpec, params: dict[str, str]) -> HostStep:
    """A step on the first PostgreSQL host, for activities that look at the whole cluster."""
    return HostStep(spec=spec, host=spec.hosts_with(Role.postgres)[0].name, params=params)
