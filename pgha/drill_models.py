"""What a failover drill takes, measures and reports. Pure models shared by the Drill
workflow, its activities (the probe, faults, healing), the CLI and the report store."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field

from pgha.models import Model
from pgha.spec import ClusterSpec
from pgha.status_models import PatroniStatus


class Scenario(StrEnum):
    #: A planned switchover through Patroni to a replica.
    switchover = "switchover"
    #: SIGKILL of the primary's postmaster (Patroni restarts it or fails over).
    kill_postgres = "kill-postgres"
    #: Patroni stopped on the primary (it stops PostgreSQL and releases the leader key).
    stop_patroni = "stop-patroni"
    #: etcd stopped on one member that is not etcd's leader: quorum must hold.
    etcd_member_loss = "etcd-member-loss"
    #: HAProxy and keepalived stopped on the VIP holder: the VIP must move.
    proxy_loss = "proxy-loss"
    #: The primary's host powered off (out of band): failover after Patroni's ttl.
    host_loss = "host-loss"
    #: The primary cut off from every other cluster host (nftables on it), not from pgha.
    partition_primary = "partition-primary"
    #: Every process of the postgres user on the primary (Patroni, PostgreSQL) stopped with
    #: SIGSTOP past the ttl, then resumed: it must not act as a second leader.
    freeze_primary = "freeze-primary"


class Outcome(StrEnum):
    """What the client knows about one write."""

    #: The commit was acknowledged.
    ok = "ok"
    #: It certainly did not commit (no connection, or the server refused the statement).
    failed = "failed"
    #: The connection broke while the statement ran: it may or may not have committed.
    unknown = "unknown"


class WriteAttempt(Model):
    seq: int
    #: Seconds since the probe started, when the statement was sent and when it returned.
    sent: float
    done: float
    outcome: Outcome
    error: str = ""


class ReadAttempt(Model):
    at: float
    ok: bool
    error: str = ""


class ProbeInput(Model):
    spec: ClusterSpec
    #: Rows the probe writes per second through the read-write port.
    rate: float = Field(20.0, gt=0, le=200)
    #: Names this drill's rows in the probe table.
    run: str
    #: The workflow whose `probe_done` query tells the probe to stop.
    workflow_id: str
    #: Bound on the probe however the workflow fares.
    max_s: float = Field(900.0, gt=0)


class ProbeLog(Model):
    """Everything the probe saw, and the rows that were in the table afterwards."""

    run: str
    started_at: AwareDatetime
    writes: list[WriteAttempt] = []
    reads: list[ReadAttempt] = []
    #: seq -> how many rows hold it, read through the read-write port after recovery.
    present: dict[int, int] = {}
    #: Why the final read-back failed, when it did (then nothing can be judged).
    readback_error: str = ""


class Verdict(Model):
    """A Jepsen-style judgement of the writes, computed from a ProbeLog."""

    acknowledged: int
    #: Acknowledged commits missing after recovery (RPO in rows), and the time they span.
    lost: list[int] = []
    lost_span_s: float = 0.0
    #: Rows present whose insert certainly failed: a correctness violation.
    ghosts: list[int] = []
    #: Rows present whose insert's outcome was unknown (allowed), and unknown ones absent.
    recovered: list[int] = []
    unknown_absent: list[int] = []
    duplicates: list[int] = []
    #: First failed write to first acknowledged write after it (the longest such gap).
    write_gap_s: float = 0.0
    #: When that gap began (the failed attempt's send time), seconds since the probe
    #: started; None when no write failed (and in reports made before 2026-12-03).
    write_gap_from_s: float | None = None
    read_gap_s: float = 0.0
    #: Slowest acknowledged commit (a stall without errors is unavailability too).
    max_commit_s: float = 0.0

    @property
    def safe(self) -> bool:
        return not (self.lost or self.ghosts or self.duplicates)


class DrillInput(Model):
    spec: ClusterSpec
    scenario: Scenario
    #: Writes per second of the probe.
    rate: float = Field(20.0, gt=0, le=200)
    #: Probe time before the fault and after the cluster healed.
    settle_s: float = Field(5.0, ge=1, le=120)
    #: How long a fault that does not end by itself (a stopped service) is kept after the
    #: cluster reacted, before healing undoes it: the cluster must work without the part.
    hold_s: float = Field(10.0, ge=0, le=600)


class Approval(Model):
    """An operator's decision on a drill waiting before its fault (`pgha approve`)."""

    approve: bool
    by: str = ""
    note: str = ""


class ClusterEvent(Model):
    """A moment of the drill on the workflow's clock: ``at`` in seconds since the workflow
    started, ``when`` the moment itself (to place it on the probe's clock)."""

    name: str
    at: float
    detail: str = ""
    when: AwareDatetime | None = None


class SeriesBucket(Model):
    """What the probe saw in one slice of time (``at``: seconds since the probe started)."""

    at: float
    writes_ok: int = 0
    writes_failed: int = 0
    writes_unknown: int = 0
    reads_ok: int = 0
    reads_failed: int = 0


class ProbeSeries(Model):
    """The probe's outcomes over time, in buckets of ``bucket_s`` seconds: small enough to
    keep in every report, enough to draw the drill's timeline."""

    started_at: AwareDatetime
    bucket_s: float
    buckets: list[SeriesBucket] = []


class FailoverSeen(Model):
    """What watching Patroni during a fault saw: the view with the leader it waited for,
    when no view showed the old leader running any more (the cluster noticed), and when
    the awaited leader first ran."""

    view: PatroniStatus
    detected_at: AwareDatetime | None = None
    leader_at: AwareDatetime | None = None


class HistorySwitch(Model):
    """The newest entry of Patroni's timeline history (``GET /history``)."""

    timeline: int
    reason: str = ""
    at: AwareDatetime | None = None
    new_leader: str = ""


class PatroniTimes(Model):
    """Patroni's side of a failover, in seconds after the fault was injected: when its
    view first showed the old leader gone (detection), when a new leader ran (promotion),
    and the timeline switch as Patroni's history records it."""

    fault_at: AwareDatetime
    detected_s: float | None = None
    promoted_s: float | None = None
    #: The history entry of the switch: its timestamp relative to the fault, and reason.
    history_switch_s: float | None = None
    history_reason: str = ""


class DrillReport(Model):
    cluster: str
    scenario: Scenario
    workflow_id: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    #: The drill's verdict: the fault happened, the cluster healed, no write went wrong.
    passed: bool
    reason: str = ""
    #: The probe's rows are pgha.drill_probe's with this run (database postgres).
    probe_run: str = ""
    old_leader: str = ""
    new_leader: str = ""
    timeline_before: int | None = None
    timeline_after: int | None = None
    events: list[ClusterEvent] = []
    verdict: Verdict | None = None
    healed: bool = False
    healing: list[str] = []
    #: Patroni's settings the figures depend on (ttl, loop_wait, retry_timeout, sync mode).
    patroni: dict[str, object] = {}
    #: The probe's outcomes over time (the timeline picture is drawn from it).
    series: ProbeSeries | None = None
    patroni_times: PatroniTimes | None = None
    #: Members healing had to reinitialise from the leader (their data had diverged).
    reinitialised: list[str] = []
    #: The etcd member leading etcd before the fault: when the lost host was also etcd's
    #: leader, the new etcd leader renews every lease, and the leader key outlives the ttl.
    etcd_leader: str = ""
