"""Fake drill activities under the real names: a Patroni view that changes when the fake
fault is injected, a probe that waits for the workflow like the real one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from pgha.activities.converge import permanent
from pgha.drill_models import (
    DrillReport,
    FailoverSeen,
    HistorySwitch,
    Outcome,
    ProbeInput,
    ProbeLog,
    WriteAttempt,
)
from pgha.status_models import (
    Backend,
    EtcdMember,
    EtcdStatus,
    Member,
    PatroniStatus,
    ProxyStatus,
)
from pgha.steps import HostStep, StepResult


class FakeDrillCluster:
    def __init__(self) -> None:
        self.leader = "db1"
        self.calls: list[str] = []
        self.lose: list[int] = []  # acknowledged seqs the "cluster" loses
        self.lagging = False  # a replica that never catches up (guard rail)
        self.never_heals = False
        #: Heals only once diverged members are reinitialised (a split after a freeze).
        self.heals_after_reinit = False
        self.reinitialised = False
        #: Heals only once a dead timeline is set aside and members are copied again.
        self.dead_timeline = False
        self.set_aside = False
        self.fault_hangs = False
        #: The new primary's archiving is stalled after the drill (pgbackrest check fails).
        self.archiving_broken = False
        #: ... because of an old timeline's segment the archive holds with other content:
        #: releasing it (archiving.release_stale_ready) makes archiving work again.
        self.stale_ready = False
        self.fault_started = asyncio.Event()
        self.saved: list[DrillReport] = []

    def view(self) -> PatroniStatus:
        members = [
            Member(name=h, host=h, role="leader" if h == self.leader else "replica",
                   state="running", timeline=2,
                   lag_bytes=None if h == self.leader else (9 << 20 if self.lagging else 0))
            for h in ("db1", "db2", "db3")
        ]  # fmt: skip
        return PatroniStatus(members=members, source="db1")

    def activities(self) -> list[Callable[..., Any]]:
        c = self

        @activity.defn(name="backup.check_archiving")
        async def check_archiving(step: HostStep) -> float:
            c.calls.append("check_archiving")
            if c.archiving_broken:
                raise permanent("[082]: WAL segment 0000000200000000000000AB was not archived "
                                "before the 60000ms timeout", "ArchivingBroken")  # fmt: skip
            return 1.5

        @activity.defn(name="archiving.release_stale_ready")
        async def release_stale_ready(step: HostStep) -> StepResult:
            c.calls.append(f"release_stale_ready@{step.host}")
            if not c.stale_ready:
                return StepResult(host=step.host, changed=False, summary="no segment of a "
                                  "timeline older than 2 waits for the archiver")  # fmt: skip
            c.stale_ready = c.archiving_broken = False
            return StepResult(host=step.host, changed=True,
                              summary="marked archived 000000010000000000000007")  # fmt: skip

        @activity.defn(name="drill.wait_healthy")
        async def wait_healthy(step: HostStep) -> PatroniStatus:
            c.calls.append("wait_healthy")
            if c.lagging or (c.never_heals and "fault" in c.calls):
                raise permanent("the cluster is not whole: db2 lags", "NotHealed")
            if c.heals_after_reinit and "fault" in c.calls and not c.reinitialised:
                raise permanent("the cluster is not whole: db3 is start failed", "NotHealed")
            if (
                c.dead_timeline
                and "fault" in c.calls
                and not (c.set_aside and c.calls[-2:] == ["reinit", "wait_healthy"])
            ):
                raise permanent("the cluster is not whole: db3 is start failed", "NotHealed")
            return c.view()

        @activity.defn(name="drill.watch_failover")
        async def watch_failover(step: HostStep) -> FailoverSeen:
            c.calls.append("watch_failover")
            now = datetime.now(UTC)
            return FailoverSeen(view=c.view(), detected_at=now, leader_at=now)

        @activity.defn(name="drill.patroni_history")
        async def patroni_history(step: HostStep) -> HistorySwitch:
            c.calls.append("history")
            return HistorySwitch(timeline=3, reason="no recovery target specified",
                                 at=datetime.now(UTC), new_leader=c.leader)  # fmt: skip

        @activity.defn(name="drill.set_aside_dead_timelines")
        async def set_aside(step: HostStep) -> StepResult:
            c.calls.append(f"set_aside on {step.host}")
            c.set_aside = True
            return StepResult(host=step.host, changed=True, summary="set aside timeline 11",
                              facts={"timelines": "11", "moved": "3"})  # fmt: skip

        @activity.defn(name="drill.release_stuck_leader")
        async def release(step: HostStep) -> StepResult:
            c.calls.append("release")
            return StepResult(host=step.host, changed=False, summary="no stuck leader")

        @activity.defn(name="drill.reinit_diverged")
        async def reinit_diverged(step: HostStep) -> StepResult:
            c.calls.append("reinit")
            c.reinitialised = True
            return StepResult(host=step.host, changed=True, summary="reinitialised db3 from db2",
                              facts={"reinitialised": "db3"})  # fmt: skip

        @activity.defn(name="drill.wait_leader")
        async def wait_leader(step: HostStep) -> PatroniStatus:
            c.calls.append("wait_leader")
            return c.view()

        @activity.defn(name="drill.switchover")
        async def switchover(step: HostStep) -> StepResult:
            c.calls.append("fault")
            c.leader = step.params["candidate"]
            return StepResult(host=step.host, changed=True, summary="switched")

        @activity.defn(name="drill.kill_postgres")
        async def kill_postgres(step: HostStep) -> StepResult:
            c.calls.append("fault")
            c.fault_started.set()
            while c.fault_hangs:
                activity.heartbeat()
                await asyncio.sleep(0.2)
            return StepResult(host=step.host, changed=True, summary="killed")

        @activity.defn(name="drill.systemctl")
        async def systemctl(step: HostStep) -> StepResult:
            c.calls.append("fault" if step.params["action"] == "stop" else "undo")
            if step.params["units"] == "patroni" and step.params["action"] == "stop":
                c.leader = "db2"
            what = f"{step.params['action']} {step.params['units']}"
            return StepResult(host=step.host, changed=True, summary=what)

        @activity.defn(name="drill.probe")
        async def probe(inp: ProbeInput) -> ProbeLog:
            c.calls.append("probe")
            handle = activity.client().get_workflow_handle(inp.workflow_id)
            writes = []
            seq = 0
            while not await handle.query("probe_done", result_type=bool):
                seq += 1
                writes.append(WriteAttempt(seq=seq, sent=seq * 0.1, done=seq * 0.1 + 0.01,
                                           outcome=Outcome.ok))  # fmt: skip
                activity.heartbeat()
                await asyncio.sleep(0.1)
            present = {w.seq: 1 for w in writes if w.seq not in c.lose}
            return ProbeLog(run=inp.run, started_at=datetime.now(UTC), writes=writes,
                            present=present)  # fmt: skip

        @activity.defn(name="status.etcd")
        async def etcd(step: HostStep) -> EtcdStatus:
            return EtcdStatus(members=[EtcdMember(endpoint=f"e{i}", healthy=True, leader=i == 0)
                                       for i in range(3)])  # fmt: skip

        @activity.defn(name="status.proxy")
        async def proxy(step: HostStep) -> ProxyStatus:
            up = [Backend(listener="rw", server="db1", status="UP")]
            return ProxyStatus(host=step.host, holds_vip=step.host == "proxy1", haproxy="active",
                               keepalived="active", backends=up)  # fmt: skip

        @activity.defn(name="reports.save_drill")
        async def save(report: DrillReport) -> str:
            c.saved.append(report)
            return "report-1"

        return [wait_healthy, wait_leader, watch_failover, patroni_history, reinit_diverged,
                set_aside, release, check_archiving, release_stale_ready,
                switchover, kill_postgres, systemctl, probe, etcd, proxy, save]  # fmt: skip
