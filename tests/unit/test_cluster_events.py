"""The events between two looks at a cluster: edges only, nothing from what was not seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pgha.checks.cluster_events import events_between
from pgha.event_kinds import EventKind
from pgha.event_models import Archiver, Observation, VerificationSeen
from pgha.spec import GuardianSettings
from pgha.status_models import (
    BackupSet,
    BackupStatus,
    ClusterStatus,
    EtcdMember,
    EtcdStatus,
    Member,
    PatroniStatus,
    ProxyStatus,
)

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
BOUNDS = GuardianSettings()


def patroni(leader: str = "db1", timeline: int = 2, down: str = "", lag: int = 0,
            members: tuple[str, ...] = ("db1", "db2", "db3")) -> PatroniStatus:  # fmt: skip
    return PatroniStatus(source="db1", members=[
        Member(name=m, host=m, role="leader" if m == leader else "replica",
               state="stopped" if m == down else "running", timeline=timeline,
               lag_bytes=None if m == leader else lag)
        for m in members])  # fmt: skip


def etcd(healthy: int = 3) -> EtcdStatus:
    return EtcdStatus(members=[EtcdMember(endpoint=f"http://10.0.0.1{i}:2379", healthy=i < healthy,
                                          leader=i == 0) for i in range(3)])  # fmt: skip


def proxies(holder: str = "proxy1") -> list[ProxyStatus]:
    return [ProxyStatus(host=p, holds_vip=p == holder, haproxy="active", keepalived="active",
                        backends=[]) for p in ("proxy1", "proxy2")]  # fmt: skip


def backups(newest_age_h: float, at: datetime = T0) -> BackupStatus:
    stopped = int((at - timedelta(hours=newest_age_h)).timestamp())
    return BackupStatus(stanza="lab", status="ok", backups=[
        BackupSet(label="20261203-010000F", type="full", started=stopped - 60, stopped=stopped,
                  size_bytes=1, repo_size_bytes=1)])  # fmt: skip


def look(at: datetime = T0, **kw: object) -> Observation:
    status = ClusterStatus(
        cluster="lab", patroni=kw.pop("patroni", patroni()), etcd=kw.pop("etcd", etcd()),
        proxies=kw.pop("proxies", proxies()), backups=kw.pop("backups", backups(2, at)),
    )  # fmt: skip
    archiver = kw.pop("archiver", Archiver(archived_count=10, failed_count=0,
                                           last_archived_at=at))  # fmt: skip
    verification = kw.pop("verification", VerificationSeen(passed=True, finished_at=at))
    return Observation(at=at, status=status, archiver=archiver, verification=verification,
                       **kw)  # type: ignore[arg-type]  # fmt: skip


def kinds(prev: Observation | None, now: Observation) -> list[EventKind]:
    return [e.kind for e in events_between(prev, now, BOUNDS)]


def test_a_cluster_under_no_change_produces_no_event() -> None:
    first = look()
    assert kinds(None, first) == []
    assert kinds(first, look(T0 + timedelta(seconds=30))) == []


def test_a_failover_is_a_leader_change_a_timeline_change_and_the_old_primary_down() -> None:
    before = look()
    after = look(T0 + timedelta(seconds=30), patroni=patroni("db2", timeline=3, down="db1"))
    found = events_between(before, after, BOUNDS)
    assert [e.kind for e in found] == [EventKind.leader_changed, EventKind.timeline_changed,
                                       EventKind.member_down]  # fmt: skip
    assert found[0].data == {"old_leader": "db1", "new_leader": "db2"}
    assert found[2].subject == "db1" and found[2].detail == "db1 is stopped"
    # The next look, with db1 back as a replica: it came back, nothing else.
    rejoined = look(T0 + timedelta(seconds=60), patroni=patroni("db2", timeline=3))
    assert kinds(after, rejoined) == [EventKind.member_back]


def test_a_condition_that_lasts_is_one_event_not_one_per_look() -> None:
    down = look(patroni=patroni(down="db3"))
    assert kinds(None, down) == [EventKind.member_down]  # the first look reports it
    assert kinds(down, look(T0 + timedelta(seconds=30), patroni=patroni(down="db3"))) == []


def test_a_member_gone_from_patronis_view_is_down() -> None:
    gone = look(patroni=patroni(members=("db1", "db2")))
    found = events_between(look(), gone, BOUNDS)
    assert [(e.kind, e.subject) for e in found] == [(EventKind.member_down, "db3")]
    assert found[0].detail == "db3 is not in Patroni's view"


def test_what_was_not_seen_yields_nothing() -> None:
    blind = Observation(at=T0, status=ClusterStatus(cluster="lab"))
    assert kinds(look(), blind) == [] and kinds(None, blind) == []
    assert kinds(blind, look()) == []


def test_lag_etcd_vip_and_archiving_edges() -> None:
    before = look()
    bad = look(
        T0 + timedelta(seconds=30), patroni=patroni(lag=64 * 1024 * 1024), etcd=etcd(2),
        proxies=proxies("proxy2"),
        archiver=Archiver(archived_count=10, failed_count=3, last_archived_at=T0,
                          last_failed_at=T0 + timedelta(seconds=20),
                          last_failed_wal="000000020000000000000042"),
    )  # fmt: skip
    found = events_between(before, bad, BOUNDS)
    assert [(e.kind, e.subject) for e in found] == [
        (EventKind.replica_lag_high, "db2"), (EventKind.replica_lag_high, "db3"),
        (EventKind.etcd_quorum_at_risk, ""), (EventKind.vip_moved, "proxy2"),
        (EventKind.archiving_failing, ""),
    ]  # fmt: skip
    assert "one more loss loses the quorum" in found[2].detail
    assert "000000020000000000000042" in found[4].detail
    assert kinds(bad, bad.model_copy(update={"at": T0 + timedelta(seconds=60)})) == []
    works = look(T0 + timedelta(seconds=90), proxies=proxies("proxy2"), etcd=etcd(2),
                 patroni=patroni(lag=64 * 1024 * 1024),
                 archiver=Archiver(archived_count=11, failed_count=3,
                                   last_archived_at=T0 + timedelta(seconds=80),
                                   last_failed_at=T0 + timedelta(seconds=20)))  # fmt: skip
    assert kinds(bad, works) == [EventKind.archiving_recovered]
    assert kinds(look(), look(etcd=etcd(1)))[0] is EventKind.etcd_quorum_at_risk


def test_backup_and_verification_age_and_a_failed_verification() -> None:
    now = T0 + timedelta(hours=30)
    old = look(now, backups=backups(27, now),
               verification=VerificationSeen(passed=True, finished_at=T0))  # fmt: skip
    assert kinds(None, old) == [EventKind.backup_stale, EventKind.verification_stale]
    assert kinds(old, old.model_copy(update={"at": now + timedelta(minutes=1)})) == []
    failed = look(now, verification=VerificationSeen(passed=False, finished_at=now,
                                                     reason="sentinel missing"))  # fmt: skip
    found = events_between(look(), failed, BOUNDS)
    assert [e.kind for e in found] == [EventKind.verification_failed]
    assert "sentinel missing" in found[0].detail
    # The same failed verification seen again is not a new event.
    assert kinds(failed, failed.model_copy(update={"at": now + timedelta(minutes=1)})) == []


def test_events_carry_the_operation_that_was_running() -> None:
    drill = look(T0 + timedelta(seconds=30), patroni=patroni("db2", timeline=3, down="db1"),
                 operation="drill")  # fmt: skip
    assert {e.during for e in events_between(look(), drill, BOUNDS)} == {"drill"}


def test_a_look_without_a_leader_mid_failover_does_not_hide_the_change() -> None:
    before = look()
    known = before.status.patroni.members[0] if before.status.patroni else None
    leaderless = look(T0 + timedelta(seconds=30),
                      patroni=patroni("db1", down="db1", members=("db2", "db3")))  # fmt: skip
    assert kinds(before, leaderless) == [EventKind.member_down]
    after = look(T0 + timedelta(seconds=60), patroni=patroni("db2", timeline=3,
                                                              members=("db2", "db3")))  # fmt: skip
    assert kinds(leaderless, after) == []  # without what was known, the change is lost
    found = events_between(leaderless, after, BOUNDS, known_leader=known)
    assert [e.kind for e in found] == [EventKind.leader_changed, EventKind.timeline_changed]
    assert found[0].data == {"old_leader": "db1", "new_leader": "db2"}
