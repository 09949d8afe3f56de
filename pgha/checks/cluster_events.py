"""The events between two looks at a cluster. Pure.

Edge-triggered: a condition that starts is an event, one that lasts is not, so a cluster
under no change produces none. The first look (no previous one) reports the conditions
that already hold (a member down, archiving failing...), but no change (there is nothing
to compare a leader with). A part that did not answer in either look yields nothing for
that part: the guardian never infers from what it did not see.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from pgha.event_kinds import EventKind
from pgha.event_models import ClusterEvent, Observation
from pgha.spec import GuardianSettings
from pgha.status_models import LEADER_ROLES, EtcdStatus, Member, PatroniStatus

RUNNING = ("running", "streaming")


def events_between(
    prev: Observation | None, now: Observation, bounds: GuardianSettings,
    known_leader: Member | None = None,
) -> list[ClusterEvent]:  # fmt: skip
    """Every event from ``prev`` to ``now``, in a fixed order (changes of leadership first),
    each marked with the operation running at ``now`` (if any).

    :param known_leader: the leader of the last look that saw one. A failover takes a few
        looks, and one in the middle of it often sees no leader at all: the change is
        judged against the leader before it, not lost.
    """
    found = [
        *_leadership(prev, now, known_leader),
        *_members(prev, now),
        *_lag(prev, now, bounds.max_lag_bytes),
        *_etcd(prev, now),
        *_vip(prev, now),
        *_archiving(prev, now),
        *_backup(prev, now, bounds.backup_max_age_h),
        *_verification(prev, now, bounds.verification_max_age_h),
    ]
    return [e.model_copy(update={"during": now.operation}) for e in found]


def _event(now: Observation, kind: EventKind, detail: str, subject: str = "",
           **data: str) -> ClusterEvent:  # fmt: skip
    return ClusterEvent(kind=kind, at=now.at, subject=subject, detail=detail, data=data)


def leader(view: PatroniStatus | None) -> Member | None:
    """The running leader, None when there is none (or none was seen)."""
    if view is None:
        return None
    return next((m for m in view.members if m.role in LEADER_ROLES and m.state in RUNNING),
                None)  # fmt: skip


def _leadership(prev: Observation | None, now: Observation,
                known: Member | None) -> Iterator[ClusterEvent]:  # fmt: skip
    old = (leader(prev.status.patroni) if prev else None) or known
    new = leader(now.status.patroni)
    if old is None or new is None:
        return
    if old.name != new.name:
        yield _event(now, EventKind.leader_changed, f"{new.name} leads; {old.name} led",
                     new.name, old_leader=old.name, new_leader=new.name)  # fmt: skip
    if old.timeline is not None and new.timeline is not None and new.timeline > old.timeline:
        yield _event(now, EventKind.timeline_changed,
                     f"timeline {old.timeline} -> {new.timeline}", new.name,
                     old_timeline=str(old.timeline), new_timeline=str(new.timeline))  # fmt: skip


def _running(view: PatroniStatus | None) -> dict[str, bool] | None:
    if view is None:
        return None
    return {m.name: m.state in RUNNING for m in view.members}


def _members(prev: Observation | None, now: Observation) -> Iterator[ClusterEvent]:
    seen = _running(now.status.patroni)
    if seen is None:
        return
    before = _running(prev.status.patroni) if prev else None
    # A member gone from Patroni's view since the last look is down too.
    names = sorted(set(seen) | set(before or {}))
    states = {m.name: m.state for m in now.status.patroni.members} if now.status.patroni else {}
    for name in names:
        up = seen.get(name, False)
        was = None if before is None else before.get(name, False)
        state = states.get(name, "not in Patroni's view")
        if not up and was is not False:
            yield _event(now, EventKind.member_down, f"{name} is {state}", name, state=state)
        elif up and was is False:
            yield _event(now, EventKind.member_back, f"{name} runs again", name)


def _lagging(view: PatroniStatus | None, bound: int) -> dict[str, int] | None:
    if view is None:
        return None
    return {m.name: m.lag_bytes for m in view.members if m.role not in LEADER_ROLES
            and m.lag_bytes is not None and m.lag_bytes > bound}  # fmt: skip


def _lag(prev: Observation | None, now: Observation, bound: int) -> Iterator[ClusterEvent]:
    lagging = _lagging(now.status.patroni, bound)
    if lagging is None:
        return
    before = (_lagging(prev.status.patroni, bound) if prev else None) or {}
    for name, lag in sorted(lagging.items()):
        if name not in before:
            yield _event(now, EventKind.replica_lag_high,
                         f"{name} is {lag} bytes behind (bound {bound})", name,
                         lag_bytes=str(lag))  # fmt: skip


def _etcd_risk(etcd: EtcdStatus | None) -> str | None:
    """Why etcd's quorum is at risk ("" when it is not), None when etcd was not seen."""
    if etcd is None or not etcd.members:
        return None
    total, healthy = len(etcd.members), sum(m.healthy for m in etcd.members)
    quorum = total // 2 + 1
    if healthy < quorum:
        return f"quorum lost: {healthy} of {total} members healthy (needs {quorum})"
    if healthy == quorum and total > 1:
        down = ", ".join(m.endpoint for m in etcd.members if not m.healthy)
        return f"{healthy} of {total} members healthy, one more loss loses the quorum ({down} down)"
    return ""


def _etcd(prev: Observation | None, now: Observation) -> Iterator[ClusterEvent]:
    risk = _etcd_risk(now.status.etcd)
    before = _etcd_risk(prev.status.etcd) if prev else None
    if risk and not before:
        yield _event(now, EventKind.etcd_quorum_at_risk, risk)


def _vip_holder(now: Observation) -> str | None:
    if not now.status.proxies:
        return None
    holders = [p.host for p in now.status.proxies if p.holds_vip]
    return holders[0] if len(holders) == 1 else ""


def _vip(prev: Observation | None, now: Observation) -> Iterator[ClusterEvent]:
    if prev is None:
        return
    old, new = _vip_holder(prev), _vip_holder(now)
    if old and new and old != new:
        yield _event(now, EventKind.vip_moved, f"{new} holds the VIP; {old} held it", new,
                     old_holder=old, new_holder=new)  # fmt: skip


def _archiving(prev: Observation | None, now: Observation) -> Iterator[ClusterEvent]:
    a = now.archiver
    if a is None:
        return
    was = prev.archiver.failing if prev and prev.archiver else None
    if a.failing and not was:
        wal = f" ({a.last_failed_wal})" if a.last_failed_wal else ""
        yield _event(now, EventKind.archiving_failing,
                     f"archive_command fails on the primary{wal}: {a.failed_count} failures",
                     wal=a.last_failed_wal)  # fmt: skip
    elif not a.failing and was:
        yield _event(now, EventKind.archiving_recovered, "archive_command works again")


def _newest_backup_age(now: Observation) -> tuple[str, timedelta] | None:
    b = now.status.backups
    if b is None or not b.backups:
        return None
    newest = max(b.backups, key=lambda s: s.stopped)
    return newest.label, now.at - datetime.fromtimestamp(newest.stopped, UTC)


def _backup(prev: Observation | None, now: Observation, max_h: float) -> Iterator[ClusterEvent]:
    bound = timedelta(hours=max_h)
    found = _newest_backup_age(now)
    if found is None:
        return
    label, age = found
    before = _newest_backup_age(prev) if prev else None
    if age > bound and not (before and before[1] > bound):
        yield _event(now, EventKind.backup_stale,
                     f"the newest backup {label} is {_hours(age)} old (bound {max_h:g} h)",
                     label)  # fmt: skip


def _hours(age: timedelta) -> str:
    return f"{age.total_seconds() / 3600:.1f} h"


def _verification(prev: Observation | None, now: Observation,
                  max_h: float) -> Iterator[ClusterEvent]:  # fmt: skip
    v = now.verification
    if v is None:
        return
    old = prev.verification if prev else None
    if not v.passed and (old is None or old.finished_at != v.finished_at):
        yield _event(now, EventKind.verification_failed,
                     f"the restore verification of {v.finished_at:%Y-%m-%d %H:%M} UTC failed: "
                     f"{v.reason}")  # fmt: skip
    bound = timedelta(hours=max_h)
    stale = now.at - v.finished_at > bound
    was = old is not None and prev is not None and prev.at - old.finished_at > bound
    if stale and not was:
        yield _event(now, EventKind.verification_stale,
                     f"the newest restore verification is {_hours(now.at - v.finished_at)} "
                     f"old (bound {max_h:g} h)")  # fmt: skip
