"""What the guardian observes, the events it derives, and what it did about each. Pure
models shared by the guardian workflow, its activities and the CLI."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from pgha.event_kinds import EventKind
from pgha.models import Model
from pgha.spec import ClusterSpec
from pgha.status_models import ClusterStatus, Member


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


class PostFailoverInput(Model):
    spec: ClusterSpec
    #: The failover the guardian saw (the leader_changed event's data).
    old_leader: str
    new_leader: str
    #: Reinitialise the old primary when it does not rejoin by itself (from the spec's
    #: guardian.reinit_old_primary unless given).
    reinit: bool | None = None
    #: How long the old primary has to rejoin by itself.
    rejoin_timeout_s: float = Field(300.0, gt=0)


class PostFailoverWait(Model):
    """A post-failover the guardian could not start yet, and the event it answers."""

    inp: PostFailoverInput
    event_at: AwareDatetime


class GuardianInput(Model):
    spec: ClusterSpec
    #: Carried over a continue-as-new: the last observation (the edges are computed
    #: against it) and the newest handled events.
    last: Observation | None = None
    recent: list[Handled] = []
    #: Looks taken since the guardian started (all runs).
    looks: int = Field(0, ge=0)
    #: Looks per run before it continues as new (its history stays a few hundred events).
    looks_per_run: int = Field(120, ge=1)
    #: A post-failover that waits for the cluster's lock (another operation held it).
    waiting: PostFailoverWait | None = None
    #: The leader of the last look that saw one (a look mid-failover sees none).
    known_leader: Member | None = None


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


class PostFailoverReport(Model):
    cluster: str
    workflow_id: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    old_leader: str
    new_leader: str
    #: How the old primary came back: "rejoined", "reinitialised", or why not.
    old_primary: str
    #: What releasing the new primary's archiver from older timelines' segments did
    #: (pgha/checks/stale_ready.py), "" when it was not run.
    archiver: str = ""
    #: Seconds `pgbackrest check` took on the new primary's archive.
    archiving_check_s: float | None = None
    #: The incremental backup taken on the new timeline, and that timeline.
    backup_label: str = ""
    backup_timeline: int | None = None
    #: The restore verification run afterwards: passed, and its reason when not.
    verified: bool | None = None
    verify_reason: str = ""

    def summary_line(self) -> str:
        """One line for the CLI and the Web UI."""
        backup = (f"backup {self.backup_label} on timeline {self.backup_timeline}"
                  if self.backup_label else "no backup (backups are off)")  # fmt: skip
        verified = ""
        if self.verified is not None:
            verified = ("; restore verified" if self.verified
                        else f"; verification FAILED: {self.verify_reason}")  # fmt: skip
        released = (f"; archiver: {self.archiver}"
                    if self.archiver.startswith(("marked", "not")) else "")  # fmt: skip
        return (f"{self.old_leader} -> {self.new_leader}: old primary {self.old_primary}"
                f"{released}; {backup}{verified}")  # fmt: skip


class ObserveInput(Model):
    spec: ClusterSpec
    #: The previous look's time: operations that ended since then still count as running
    #: (a drill that failed over and finished between two looks made that change).
    since: AwareDatetime | None = None


class RecordInput(Model):
    spec: ClusterSpec
    event: ClusterEvent
    #: POST it to the spec's webhook too (an alert for an incident), not only log it.
    send: bool = False


class PostFailoverStart(Model):
    inp: PostFailoverInput
    task_queue: str
