"""What the guardian observes, the events it derives, and what it did about each. Pure
models shared by the guardian workflow, its activities and the CLI."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from pgha.event_kinds import EventKind, Reaction
from pgha.models import Model
from pgha.spec import ClusterSpec
from pgha.status_models import ClusterStatus


class Archiver(Model):
    """The primary's pg_stat_archiver, in the parts that say whether archiving works."""

    archived_count: int
    failed_count: int
    last_archived_at: AwareDatetime | None = None
    last_failed_at: AwareDatetime | None = None
    last_failed_wal: str = ""

    @property
    def failing(self) -> bool:
        """The last attempt failed: a failure newer than the last success."""
        if self.last_failed_at is None:
            return False
        return self.last_archived_at is None or self.last_failed_at > self.last_archived_at


class VerificationSeen(Model):
    """The newest restore verification in the report store."""

    passed: bool
    finished_at: AwareDatetime
    reason: str = ""


class Observation(Model):
    """One look at the cluster. A part that did not answer is None (or listed in
    ``status.unreadable``); the events never guess from what was not seen."""

    at: AwareDatetime
    status: ClusterStatus
    archiver: Archiver | None = None
    verification: VerificationSeen | None = None
    #: The mutating pgha operation running on the cluster at the time ("drill", "upgrade"),
    #: or "" when none: changes it makes are its own, not incidents.
    operation: str = ""


class ClusterEvent(Model):
    kind: EventKind
    at: AwareDatetime
    #: The member, proxy or backup the event is about ("" for the cluster).
    subject: str = ""
    detail: str
    #: "observed" (by the guardian), or who sent it (`pgha event send`, a Patroni callback).
    source: str = "observed"
    #: The pgha operation that was running when it was seen: then it is that operation's
    #: doing (a drill's fault), not an incident, and mutating reactions are skipped.
    during: str = ""
    data: dict[str, str] = {}


class Handled(Model):
    """An event and what the guardian did about it."""

    event: ClusterEvent
    #: Each reaction with its outcome ("alert: sent (204)", "post_failover: started
    #: pgha-postfailover:lab:...", "post_failover: skipped: a drill is running").
    done: list[str] = []


class GuardianInput(Model):
    spec: ClusterSpec
    #: Carried over a continue-as-new: the last observation (the edges are computed
    #: against it) and the newest handled events.
    last: Observation | None = None
    recent: list[Handled] = []
    #: Looks taken since the guardian started (all runs).
    looks: int = Field(0, ge=0)


class ExternalEvent(Model):
    """An event another system sends (`pgha event send`, the `event` signal)."""

    kind: EventKind
    subject: str = ""
    detail: str = ""
    source: str = "external"
    data: dict[str, str] = {}


class GuardianView(Model):
    """The guardian's current view, for `pgha events` and the Web UI."""

    cluster: str
    looks: int
    last_at: AwareDatetime | None = None
    leader: str = ""
    timeline: int | None = None
    recent: list[Handled] = []


__all__ = ["EventKind", "Reaction"]
