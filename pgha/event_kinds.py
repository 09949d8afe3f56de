"""The kinds of cluster events the guardian knows and the reactions a spec can map them to.
Plain enums with no imports of pgha, so the spec and the event models both use them."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """What changed. Observed ones are edge-triggered: an event when a condition starts
    (and, where an operator wants to know, when it ends), never one per observation."""

    #: Another member leads: an unplanned failover, unless an operation did it.
    leader_changed = "leader_changed"
    #: The leader's timeline went up (a promotion).
    timeline_changed = "timeline_changed"
    #: A member stopped running (or left Patroni's view); and came back.
    member_down = "member_down"
    member_back = "member_back"
    #: A replica's lag went over the bound.
    replica_lag_high = "replica_lag_high"
    #: etcd has only a bare quorum left (one more loss and Patroni cannot lead), or none.
    etcd_quorum_at_risk = "etcd_quorum_at_risk"
    #: Another proxy holds the VIP.
    vip_moved = "vip_moved"
    #: The primary's archive_command fails (pg_stat_archiver); and works again.
    archiving_failing = "archiving_failing"
    archiving_recovered = "archiving_recovered"
    #: The newest backup is older than its bound.
    backup_stale = "backup_stale"
    #: The newest restore verification failed, or is older than its bound.
    verification_failed = "verification_failed"
    verification_stale = "verification_stale"


class Reaction(StrEnum):
    """What the guardian does about an event."""

    #: Check the old primary rejoined (reinitialise it when the spec allows), `pgbackrest
    #: check` on the new primary, an incremental backup on the new timeline, then a
    #: restore verification.
    post_failover = "post_failover"
    #: POST the event as JSON to the spec's webhook (and log it).
    alert = "alert"
    #: Log it only.
    log = "log"
