"""Drill: inject a real fault, measure what an application saw, heal, report.

Healing runs on every path (the fault failed, the wait timed out, the drill was
cancelled): a drill never leaves the cluster worse than it found it without saying so.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.probe_series import series_of
    from pgha.checks.probe_verdict import judge
    from pgha.drill_models import (
        Approval,
        ClusterEvent,
        DrillInput,
        DrillReport,
        FailoverSeen,
        HistorySwitch,
        PatroniTimes,
        ProbeInput,
        ProbeLog,
        Scenario,
        Verdict,
    )
    from pgha.progress import Progress, StepState
    from pgha.spec import ClusterSpec, PowerControl, Role
    from pgha.status_models import LEADER_ROLES, EtcdStatus, PatroniStatus, ProxyStatus
    from pgha.steps import HostStep, StepResult
    from pgha.workflows.policy import CONVERGE, LOCAL_WRITE, STATUS_READ, ActivityPolicy
    from pgha.workflows.tracker import Tracker, failure_text

#: Waiting for Patroni to reach a state: the activity polls and bounds itself.
WAIT = ActivityPolicy(
    start_to_close=timedelta(minutes=6),
    heartbeat=timedelta(seconds=20),
    retry=RetryPolicy(maximum_attempts=2, non_retryable_error_types=["NoLeader", "NotHealed"]),
)


#: One `pgbackrest check` after healing: it waits for a switched segment itself (archive
#: timeout), and a retry would only hide a stall the report must show.
ONCE = ActivityPolicy(
    start_to_close=timedelta(minutes=6),
    heartbeat=timedelta(seconds=30),
    retry=RetryPolicy(maximum_attempts=1),
)


class DrillRefused(Exception):
    pass


@workflow.defn(name="Drill")
class Drill:
    """Runbook: the cluster must be whole (members streaming without lag, etcd healthy,
    both proxies up, one VIP holder) or the drill is refused; start the probe; let it run;
    inject the fault; wait for a running leader; heal and wait for every member to stream
    with no lag; let the probe run on; stop it, read the rows back, judge; report."""

    def __init__(self) -> None:
        self.tracker = Tracker("drill", "")
        self.done = False
        self.events: list[ClusterEvent] = []
        self.etcd: EtcdStatus | None = None
        self.vip_holder = ""
        self.undo: list[HostStep] = []
        self.waiting_approval = False
        self.approval: Approval | None = None
        self.fault_at: datetime | None = None
        self.seen: FailoverSeen | None = None
        self.switch: HistorySwitch | None = None
        self.reinitialised: list[str] = []

    @workflow.query(name="progress")
    def progress(self) -> Progress:
        return self.tracker.progress

    @workflow.query(name="probe_done")
    def probe_done(self) -> bool:
        return self.done

    @workflow.update(name="approve")
    def approve(self, decision: Approval) -> str:
        self.approval = decision
        return "approved: the fault follows" if decision.approve else "rejected: nothing is done"

    @approve.validator
    def _only_while_waiting(self, decision: Approval) -> None:
        if not self.waiting_approval or self.approval is not None:
            raise ValueError("this drill is not waiting for an approval")

    @workflow.run
    async def run(self, inp: DrillInput) -> DrillReport:
        spec = inp.spec
        self.tracker = Tracker("drill", spec.cluster)
        self.tracker.tag_search_attributes()
        self.started = workflow.now()
        self.tracker.phase("guard rails")
        if inp.scenario is Scenario.host_loss and spec.drill.power is PowerControl.none:
            raise ApplicationError(
                f"drill refused: host-loss needs a way to power hosts off and on, and cluster "
                f"{spec.cluster} has none (set drill.power to lab or command in the spec)",
                type="DrillRefused", non_retryable=True,
            )  # fmt: skip
        before = await self._whole(spec)
        old_leader = _leader(before)
        # Drills started before approvals existed replay without the step.
        if spec.drill.require_approval and workflow.patched("drill-approval"):
            await self._approval(spec, inp.scenario, old_leader)
        self.tracker.phase("probe")
        run_id = f"{spec.cluster}-{inp.scenario.value}-{str(workflow.uuid4())[:8]}"
        probe = workflow.start_activity(
            "drill.probe",
            ProbeInput(spec=spec, rate=inp.rate, run=run_id,
                       workflow_id=workflow.info().workflow_id),
            result_type=ProbeLog,
            start_to_close_timeout=timedelta(minutes=20),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
            summary="probe: writes and reads through the cluster's endpoints",
        )  # fmt: skip
        await workflow.sleep(inp.settle_s)
        reason, healed, after, cancelled = "", False, None, False
        healing: list[str] = []
        try:
            self.tracker.phase("fault")
            fault = await self._inject(spec, inp.scenario, old_leader, before)
            self._fault_injected(fault)
            await self._reaction(spec, inp.scenario, old_leader, fault)
            if self.undo:  # a stopped service stays stopped a while: the cluster copes
                await workflow.sleep(inp.hold_s)
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                reason, cancelled = "cancelled during the fault", True
            else:
                reason = failure_text(err)
        except asyncio.CancelledError:
            reason, cancelled = "cancelled during the fault", True
        finally:
            self.tracker.phase("healing")
            healed, after, healing = await self._heal(spec)
            self._event("healed" if healed else "not healed", "; ".join(healing))
            await self._read_history(spec, after)
            await workflow.sleep(inp.settle_s)
            self.done = True
            log = await probe
        verdict: Verdict | None = None
        try:
            verdict = judge(log)
        except ValueError as err:
            reason = reason or str(err)
        report = self._report(inp, old_leader, before, after, verdict, healed, healing, reason)
        report = report.model_copy(update={"probe_run": run_id, "series": series_of(log)})
        await LOCAL_WRITE.execute("reports.save_drill", report, str, summary="save the report")
        if cancelled:
            raise asyncio.CancelledError(reason)
        if not report.passed:
            self.tracker.done(f"FAILED: {report.reason}")
            raise ApplicationError(f"drill {inp.scenario.value} of {spec.cluster} failed: "
                                   f"{report.reason}", report, type="DrillFailed",
                                   non_retryable=True)  # fmt: skip
        assert verdict is not None
        self.tracker.done(
            f"{inp.scenario.value}: writes down {verdict.write_gap_s:.1f} s, reads down "
            f"{verdict.read_gap_s:.1f} s, {len(verdict.lost)} acknowledged writes lost; "
            f"{old_leader} -> {report.new_leader}"
        )
        return report

    # ------------------------------------------------------------------ steps

    async def _whole(self, spec: ClusterSpec) -> PatroniStatus:
        """The guard rail: refuse unless the cluster is whole."""
        problems: list[str] = []
        view: PatroniStatus | None = None
        try:
            view = await WAIT.execute(
                "drill.wait_healthy", _step(spec, {"within_s": "10", "max_lag": "1048576"}),
                PatroniStatus, summary="the cluster is whole",
            )  # fmt: skip
        except ActivityError as err:
            problems.append(failure_text(err))
        etcd = [h.name for h in spec.hosts_with(Role.etcd)]
        try:
            es = await STATUS_READ.execute("status.etcd", HostStep(spec=spec, host=etcd[0]),
                                           EtcdStatus, summary="etcd health")  # fmt: skip
            self.etcd = es
            sick = [m.endpoint for m in es.members if not m.healthy]
            if sick or len(es.members) < len(etcd):
                problems.append(f"etcd: {len(es.members) - len(sick)} of {len(etcd)} healthy")
        except ActivityError as err:
            problems.append(f"etcd: {failure_text(err)}")
        holders = 0
        for p in [h.name for h in spec.hosts_with(Role.haproxy)]:
            try:
                ps = await STATUS_READ.execute("status.proxy", HostStep(spec=spec, host=p),
                                               ProxyStatus, summary=f"proxy {p}")  # fmt: skip
                holders += ps.holds_vip
                self.vip_holder = p if ps.holds_vip else self.vip_holder
                if ps.haproxy != "active" or ps.keepalived != "active":
                    problems.append(f"{p}: haproxy {ps.haproxy}, keepalived {ps.keepalived}")
            except ActivityError as err:
                problems.append(f"{p}: {failure_text(err)}")
        if spec.vip is not None and holders != 1:
            problems.append(f"the VIP is held by {holders} proxies")
        self.tracker.add("guard", "the cluster is whole", None)
        if problems or view is None:
            self.tracker.finish("guard", StepState.failed, "; ".join(problems))
            raise ApplicationError(
                f"drill refused: cluster {spec.cluster} is not whole ({'; '.join(problems)}); "
                "nothing was done. Fix it (`pgha status`) and run the drill again.",
                type="DrillRefused", non_retryable=True,
            )  # fmt: skip
        self.tracker.finish("guard", StepState.ok, f"{_leader(view)} leads, all streaming")
        return view

    async def _approval(self, spec: ClusterSpec, scenario: Scenario, leader: str) -> None:
        """Wait for `pgha approve` before anything is done to the cluster.

        :raises ApplicationError: DrillRefused when rejected or not decided in time.
        """
        self.tracker.phase("approval")
        self.tracker.add("approval", f"approval of {scenario.value} on {leader}", None)
        self.tracker.start("approval", f"waiting: `pgha approve --cluster {spec.cluster}`")
        self.waiting_approval = True
        try:
            await workflow.wait_condition(
                lambda: self.approval is not None,
                timeout=timedelta(seconds=spec.drill.approval_timeout_s),
            )
        except TimeoutError:
            pass
        self.waiting_approval = False
        decision = self.approval
        if decision is None or not decision.approve:
            why = ("rejected" + (f" by {decision.by}" if decision.by else "")
                   + (f": {decision.note}" if decision.note else "")) if decision else (
                f"not approved within {spec.drill.approval_timeout_s:g} s")  # fmt: skip
            self.tracker.finish("approval", StepState.failed, why)
            raise ApplicationError(f"drill refused: {why}; nothing was done", type="DrillRefused",
                                   non_retryable=True)  # fmt: skip
        self.tracker.finish("approval", StepState.ok, f"approved by {decision.by or '?'}")
        self._event("approved", decision.by)

    async def _inject(
        self, spec: ClusterSpec, scenario: Scenario, leader: str, view: PatroniStatus
    ) -> StepResult:
        """The fault, on the host the scenario aims at; what undoes it is noted first, so
        healing knows even when the fault's own step fails halfway."""
        stop = "drill.systemctl"
        if scenario is Scenario.switchover:
            candidate = next(m.name for m in view.members if m.name != leader)
            activity, step = "drill.switchover", _on(spec, leader, candidate=candidate)
        elif scenario is Scenario.kill_postgres:
            activity, step = "drill.kill_postgres", _on(spec, leader)
        elif scenario is Scenario.stop_patroni:
            activity, step = stop, _on(spec, leader, action="stop", units="patroni")
            self.undo.append(_on(spec, leader, action="start", units="patroni"))
        elif scenario is Scenario.etcd_member_loss:
            victim = self._etcd_follower(spec)
            activity, step = stop, _on(spec, victim, action="stop", units="etcd")
            self.undo.append(_on(spec, victim, action="start", units="etcd"))
        elif scenario is Scenario.partition_primary:
            activity, step = "drill.partition", _on(spec, leader, action="cut")
            self.undo.append(_on(spec, leader, action="heal"))
        elif scenario is Scenario.freeze_primary:
            activity, step = "drill.signal", _on(spec, leader, signal="STOP")
            self.undo.append(_on(spec, leader, signal="CONT"))
        elif scenario is Scenario.host_loss:
            activity, step = "drill.power", _on(spec, leader, action="off")
            self.undo.append(_on(spec, leader, action="on"))
        else:
            if not self.vip_holder:
                raise ApplicationError("no proxy holds the VIP", type="DrillRefused",
                                       non_retryable=True)  # fmt: skip
            units = "keepalived haproxy"
            activity, step = stop, _on(spec, self.vip_holder, action="stop", units=units)
            self.undo.append(_on(spec, self.vip_holder, action="start", units="haproxy keepalived"))
        self._event("fault", f"{scenario.value} on {step.host}")
        return await self.tracker.run(
            "fault", f"{scenario.value}", step.host,
            CONVERGE.execute(activity, step, StepResult, summary=scenario.value),
            lambda r: (StepState.changed, r.summary),
        )  # fmt: skip

    def _fault_injected(self, fault: StepResult) -> None:
        """When the fault really happened: the activity's own clock just before its command
        (the SSH connection before it is not the fault), else now."""
        try:
            self.fault_at = datetime.fromisoformat(fault.facts["at"])
        except (KeyError, ValueError):
            self.fault_at = workflow.now()
        for i, e in enumerate(self.events):
            if e.name == "fault":
                at = round((self.fault_at - self.started).total_seconds(), 2)
                self.events[i] = e.model_copy(update={"when": self.fault_at, "at": at})

    def _etcd_leader(self, spec: ClusterSpec) -> str:
        """The host whose etcd member led etcd at the guard rail (empty when unknown)."""
        members = self.etcd.members if self.etcd else []
        leaders = [m.endpoint for m in members if m.leader]
        return next((h.name for h in spec.hosts_with(Role.etcd)
                     if any(_serves(e, str(h.address)) for e in leaders)), "")  # fmt: skip

    def _etcd_follower(self, spec: ClusterSpec) -> str:
        """An etcd member that is not etcd's leader (losing the leader is a different drill)."""
        leader = self._etcd_leader(spec)
        followers = [h.name for h in spec.hosts_with(Role.etcd) if h.name != leader]
        return followers[0] if followers else spec.hosts_with(Role.etcd)[-1].name

    async def _reaction(
        self, spec: ClusterSpec, scenario: Scenario, leader: str, fault: StepResult
    ) -> None:
        """Wait for what the cluster should do about the fault: a new leader, a restarted
        postmaster, the VIP on the other proxy, or simply a leader still running."""
        if scenario is Scenario.proxy_loss:
            holder = await self.tracker.run(
                "reaction", "the VIP moves", None,
                WAIT.execute("drill.wait_vip", _step(spec, {"not": self.vip_holder}), str,
                             summary="wait for the VIP to move"),
                lambda h: (StepState.ok, f"{h} holds the VIP"),
            )  # fmt: skip
            self._event("vip moved", holder)
            return
        wait = {"not": leader if scenario in MOVES_LEADER else ""}
        if scenario in TTL_BOUND:  # the leader key must expire first
            wait["within_s"] = str(spec.patroni.ttl * 3 + 30)
        if scenario is Scenario.kill_postgres:
            wait |= {"killed_on": leader, "killed_pid": str(fault.facts.get("pid", ""))}
        # Drills started before the failover times existed replay the plain wait.
        if not workflow.patched("failover-times"):
            view = await self.tracker.run(
                "reaction", "a running leader", None,
                WAIT.execute("drill.wait_leader", _step(spec, wait), PatroniStatus,
                             summary="wait for a leader"),
                lambda v: (StepState.ok, f"{_leader(v)} leads"),
            )  # fmt: skip
            self._event("leader running", _leader(view))
            return
        self.seen = await self.tracker.run(
            "reaction", "a running leader", None,
            WAIT.execute("drill.watch_failover", _step(spec, wait), FailoverSeen,
                         summary="watch Patroni until a leader runs"),
            lambda s: (StepState.ok, f"{_leader(s.view)} leads"),
        )  # fmt: skip
        if self.seen.detected_at is not None and scenario is not Scenario.switchover:
            self._event("old leader gone", leader, self.seen.detected_at)
        self._event("leader running", _leader(self.seen.view), self.seen.leader_at)

    async def _read_history(self, spec: ClusterSpec, after: PatroniStatus | None) -> None:
        """Patroni's own record of the timeline switch (when and why), best effort: the
        drill's verdict does not depend on it."""
        leader = _leader(after)
        if not leader or self.seen is None or not workflow.patched("failover-times"):
            return
        try:
            self.switch = await STATUS_READ.execute(
                "drill.patroni_history", HostStep(spec=spec, host=leader), HistorySwitch,
                summary="Patroni's timeline history",
            )  # fmt: skip
        except ActivityError as err:
            self._event("history unreadable", failure_text(err))

    async def _heal(self, spec: ClusterSpec) -> tuple[bool, PatroniStatus | None, list[str]]:
        """Put the members back (:meth:`_heal_members`), then check that the primary's WAL
        reaches the repository: a cluster whose archiving stalled after the role changes
        is not healed, whatever its members look like. The one stall healing undoes is an
        older timeline's segment the archive holds with other content
        (pgha/checks/stale_ready.py)."""
        healed, view, done = await self._heal_members(spec)
        repos = spec.hosts_with(Role.backup_repo)
        # Drills started before this check replay without it.
        if not (healed and spec.backup.enabled and repos and workflow.patched("heal-archiving")):
            return healed, view, done
        repo = repos[0].name
        leader = _leader(view)
        # `pgbackrest check` passes while PostgreSQL's archiver is held on such a segment
        # (the asynchronous push takes the newer segments by itself, but PostgreSQL keeps
        # retrying the old one and pg_wal grows): look before the check. Drills started
        # before this replay without it.
        if leader and workflow.patched("heal-release-before-check"):
            try:
                first = await self._release_stale(spec, leader, "release-ready-first")
            except ActivityError as err:
                return False, view, [*done, failure_text(err)]
            if first.changed:
                self._event("stale WAL released", first.summary)
                done = [*done, first.summary]
        try:
            took = await self._check_archiving(spec, repo, "archiving")
            return True, view, [*done, f"archiving works (pgbackrest check, {took:.1f} s)"]
        except ActivityError as err:
            done = [*done, f"archiving does not work: {failure_text(err)}"]
        # Drills started before the stale-segment remedy replay without it.
        if not leader or not workflow.patched("heal-stale-ready"):
            return False, view, done
        try:
            r = await self._release_stale(spec, leader, "release-ready")
        except ActivityError as err:
            return False, view, [*done, failure_text(err)]
        done.append(r.summary)
        if not r.changed:
            return False, view, done
        self._event("stale WAL released", r.summary)
        try:
            took = await self._check_archiving(spec, repo, "archiving-again")
        except ActivityError as err:
            return False, view, [*done, f"archiving still does not work: {failure_text(err)}"]
        return True, view, [*done, f"archiving works again (pgbackrest check, {took:.1f} s)"]

    async def _release_stale(self, spec: ClusterSpec, leader: str, key: str) -> StepResult:
        """The primary's archiver released from older timelines' segments the repository
        refuses (pgha/checks/stale_ready.py); nothing done when none waits."""
        return await self.tracker.run(
            key, "archiver not held on an old timeline", leader,
            CONVERGE.execute("archiving.release_stale_ready", HostStep(spec=spec, host=leader),
                             StepResult, summary="release stale WAL segments"),
            lambda r: (StepState.changed if r.changed else StepState.ok, r.summary),
        )  # fmt: skip

    async def _check_archiving(self, spec: ClusterSpec, repo: str, key: str) -> float:
        return await self.tracker.run(
            key, "archiving works on the primary", repo,
            ONCE.execute("backup.check_archiving", HostStep(spec=spec, host=repo), float,
                         summary="pgbackrest check"),
            lambda s: (StepState.ok, f"WAL reached the repository; check took {s:.1f} s"),
        )  # fmt: skip

    async def _heal_members(
        self, spec: ClusterSpec
    ) -> tuple[bool, PatroniStatus | None, list[str]]:
        """Undo the fault (start what was stopped), then wait for every member to stream
        again with no lag (Patroni restarts a killed postmaster and rewinds a former
        primary itself)."""
        done: list[str] = []
        for step in self.undo:
            activity = _undo_activity(step)
            try:
                r = await CONVERGE.execute(activity, step, StepResult,
                                           summary=f"heal {step.host}")  # fmt: skip
                done.append(r.summary)
            except ActivityError as err:
                done.append(f"{step.host}: {failure_text(err)}")
        # Drills started before healing could reinitialise replay the single long wait.
        reinit = workflow.patched("heal-reinit")
        within = spec.drill.heal_timeout_s if reinit else 300.0
        try:
            view = await self._healed(spec, within)
            return True, view, [*done, "every member streams with no lag"]
        except ActivityError as err:
            if not (reinit and spec.drill.reinit_diverged):
                return False, None, [*done, failure_text(err)]
            done.append(failure_text(err))
        # A member that did not rejoin by itself has diverged (a former primary that
        # cannot be rewound, a promoted replica that lost the race): copy it afresh from
        # the leader every member agrees on. First, a leader key held by a member that
        # cannot run (it came back and rewrote the key) must go to the rightful heir.
        try:
            if workflow.patched("heal-release"):
                r = await self.tracker.run(
                    "release", "no stuck leader", None,
                    CONVERGE.execute("drill.release_stuck_leader", _step(spec, {}), StepResult,
                                     summary="hand a stuck leader key over"),
                    lambda r: (StepState.changed if r.changed else StepState.ok, r.summary),
                )  # fmt: skip
                if r.changed:
                    done.append(r.summary)
                    self._event("leadership handed over", r.summary)
                    try:  # the others rejoin by themselves unless their data diverged
                        view = await self._healed(spec, within, key="heal-after-release")
                        return True, view, [*done, "every member streams with no lag"]
                    except ActivityError as err:
                        done.append(failure_text(err))
            await self._reinit(spec, done, "reinit")
            view = await self._healed(spec, within, key="heal-again")
            return True, view, [*done, "every member streams with no lag"]
        except ActivityError as err:
            repos = spec.hosts_with(Role.backup_repo)
            if not (spec.backup.enabled and repos and workflow.patched("heal-set-aside")):
                return False, None, [*done, failure_text(err)]
            done.append(failure_text(err))
        # A fresh copy that still cannot start follows a dead timeline from the archive
        # (pgha/checks/dead_timelines.py): set its files aside, then copy again.
        try:
            r = await self.tracker.run(
                "set-aside", "set aside timelines no member follows", repos[0].name,
                CONVERGE.execute("drill.set_aside_dead_timelines",
                                 HostStep(spec=spec, host=repos[0].name), StepResult,
                                 summary="set aside dead timelines in the archive"),
                lambda r: (StepState.changed if r.changed else StepState.ok, r.summary),
            )  # fmt: skip
            done.append(r.summary)
            if not r.changed:
                return False, None, done
            self._event("timelines set aside", r.summary)
            await self._reinit(spec, done, "reinit-again")
            view = await self._healed(spec, within, key="heal-last")
            return True, view, [*done, "every member streams with no lag"]
        except ActivityError as err:
            return False, None, [*done, failure_text(err)]

    async def _reinit(self, spec: ClusterSpec, done: list[str], key: str) -> None:
        r = await self.tracker.run(
            key, "reinitialise diverged members", None,
            CONVERGE.execute("drill.reinit_diverged", _step(spec, {}), StepResult,
                             summary="reinitialise diverged members"),
            lambda r: (StepState.changed if r.changed else StepState.ok, r.summary),
        )  # fmt: skip
        names = [n for n in r.facts.get("reinitialised", "").split(",") if n]
        self.reinitialised += [n for n in names if n not in self.reinitialised]
        done.append(r.summary)
        self._event("reinitialised", r.summary)

    async def _healed(self, spec: ClusterSpec, within: float, key: str = "heal") -> PatroniStatus:
        return await self.tracker.run(
            key, "every member streaming, no lag", None,
            WAIT.execute("drill.wait_healthy", _step(spec, {"within_s": f"{within:g}"}),
                         PatroniStatus, summary="wait until healed"),
            lambda v: (StepState.ok, f"{_leader(v)} leads, all streaming"),
        )  # fmt: skip

    # ------------------------------------------------------------------ report

    def _event(self, name: str, detail: str = "", when: datetime | None = None) -> None:
        when = when or workflow.now()
        at = (when - self.started).total_seconds()
        self.events.append(ClusterEvent(name=name, at=round(at, 2), detail=detail, when=when))

    def _patroni_times(
        self, scenario: Scenario, timeline_before: int | None
    ) -> PatroniTimes | None:
        """Patroni's side of a fault that moves or restarts the leader (none for the
        others); the history's switch only when this drill made it."""
        if self.fault_at is None or self.seen is None:
            return None
        if scenario not in (*MOVES_LEADER, Scenario.kill_postgres):
            return None
        fault_at = self.fault_at

        def since(t: datetime | None) -> float | None:
            return None if t is None else round((t - fault_at).total_seconds(), 2)

        switch = (
            self.switch if self.switch and self.switch.timeline > (timeline_before or 0) else None
        )
        return PatroniTimes(
            fault_at=fault_at, detected_s=since(self.seen.detected_at),
            promoted_s=since(self.seen.leader_at),
            history_switch_s=since(switch.at) if switch else None,
            history_reason=switch.reason if switch else "",
        )  # fmt: skip

    def _report(
        self, inp: DrillInput, old: str, before: PatroniStatus, after: PatroniStatus | None,
        verdict: Verdict | None, healed: bool, healing: list[str], reason: str,
    ) -> DrillReport:  # fmt: skip
        p = inp.spec.patroni
        if not reason and verdict is not None and not verdict.safe:
            reason = (f"writes went wrong: {len(verdict.lost)} lost, {len(verdict.ghosts)} "
                      f"ghost, {len(verdict.duplicates)} duplicated")  # fmt: skip
        if not reason and not healed:
            reason = "the cluster did not heal: " + "; ".join(healing)
        new = _leader(after) if after else ""
        moves = inp.scenario in MOVES_LEADER
        if not reason and moves and new == old:
            reason = f"the leader did not move from {old}"
        return DrillReport(
            cluster=inp.spec.cluster, scenario=inp.scenario,
            workflow_id=workflow.info().workflow_id, started_at=self.started,
            finished_at=workflow.now(), passed=not reason, reason=reason,
            old_leader=old, new_leader=new,
            timeline_before=_timeline(before), timeline_after=_timeline(after),
            events=self.events, verdict=verdict, healed=healed, healing=healing,
            patroni={"ttl": p.ttl, "loop_wait": p.loop_wait, "retry_timeout": p.retry_timeout,
                     "synchronous_mode": p.synchronous_mode},
            patroni_times=self._patroni_times(inp.scenario, _timeline(before)),
            reinitialised=self.reinitialised,
            etcd_leader=self._etcd_leader(inp.spec),
        )  # fmt: skip


#: Scenarios after which another member must lead, and those bounded by the leader key's ttl.
MOVES_LEADER = (Scenario.switchover, Scenario.stop_patroni, Scenario.host_loss,
                Scenario.partition_primary, Scenario.freeze_primary)  # fmt: skip
TTL_BOUND = (Scenario.host_loss, Scenario.partition_primary, Scenario.freeze_primary)


def _serves(endpoint: str, address: str) -> bool:
    """Whether an etcd endpoint URL (http://10.0.0.11:2379) is that address's."""
    return f"//{address}:" in endpoint or endpoint.startswith(f"{address}:")


def _undo_activity(step: HostStep) -> str:
    """The activity that undoes a fault, from the step that was noted for it."""
    if "signal" in step.params:
        return "drill.signal"
    if step.params.get("action") == "heal":
        return "drill.partition"
    if step.params.get("action") == "on":
        return "drill.power"
    return "drill.systemctl"


def _on(spec: ClusterSpec, host: str, **params: str) -> HostStep:
    return HostStep(spec=spec, host=host, params=params)


def _step(spec: ClusterSpec, params: dict[str, str]) -> HostStep:
    first = spec.hosts_with(Role.postgres)[0].name
    return HostStep(spec=spec, host=first, params=params)


def _leader(view: PatroniStatus | None) -> str:
    if view is None:
        return ""
    return next((m.name for m in view.members
                 if m.role in LEADER_ROLES), "")  # fmt: skip


def _timeline(view: PatroniStatus | None) -> int | None:
    if view is None:
        return None
    return max((m.timeline for m in view.members if m.timeline is not None), default=None)
