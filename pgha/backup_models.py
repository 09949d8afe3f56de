"""What the backup, restore-verification and scheduled-run workflows take and return. Pure
models: workflows, activities, the CLI and the report store share them; no secret values.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, Field

from pgha.models import HostTarget, Model
from pgha.spec import ClusterSpec


class BackupType(StrEnum):
    full = "full"
    diff = "diff"
    incr = "incr"


class ScheduleKind(StrEnum):
    """What a schedule of the spec's ``backup.schedule`` runs."""

    full = "full"
    diff = "diff"
    incr = "incr"
    verify_restore = "verify-restore"

    @property
    def backup_type(self) -> BackupType | None:
        return None if self is ScheduleKind.verify_restore else BackupType(self.value)


class BackupInput(Model):
    spec: ClusterSpec
    type: BackupType = BackupType.full


class BackupRecord(Model):
    """One backup set, as `pgbackrest info` describes it."""

    label: str
    type: BackupType
    started: AwareDatetime
    stopped: AwareDatetime
    #: Database bytes the set covers (what a restore writes).
    size_bytes: int
    #: Bytes the set takes in the repository (compressed, this set only).
    repo_size_bytes: int
    #: The WAL a restore of this set needs at least: first and last segment names.
    wal_start: str = ""
    wal_stop: str = ""
    lsn_start: str = ""
    lsn_stop: str = ""
    #: The set a diff or incr builds on.
    prior: str | None = None
    #: The repository's archive of the database it was taken from (``15-1``).
    archive_id: str = ""

    @property
    def duration_s(self) -> float:
        return (self.stopped - self.started).total_seconds()

    @property
    def timeline(self) -> int | None:
        return int(self.wal_start[:8], 16) if len(self.wal_start) == 24 else None


class BackupResult(Model):
    cluster: str
    stanza: str
    backup: BackupRecord
    #: Labels `expire` removed under the spec's retention.
    expired: list[str] = []
    #: Seconds `pgbackrest check` took before the backup (archiving proven to work).
    check_s: float
    #: The primary at the time of the backup, and the host the files were copied from.
    primary: str
    #: Every set in the repository after expire, oldest first.
    sets: list[BackupRecord] = []


class VerifyRestoreInput(Model):
    spec: ClusterSpec
    #: A backup label; the newest set when None.
    set_label: str | None = None
    #: Recover to this time instead of to the sentinel (point-in-time verification).
    target_time: AwareDatetime | None = None


class TableRows(Model):
    """Rows of one user table."""

    database: str
    schema_name: str
    table: str
    rows: int

    @property
    def name(self) -> str:
        return f"{self.database}.{self.schema_name}.{self.table}"


class Sentinel(Model):
    """The row written on the primary before the restore: the restored copy must hold it
    (or not, for a target time before it) and the table row counts it was taken with."""

    value: str
    written_at: AwareDatetime
    #: The writing transaction: the restore recovers to it (inclusive).
    xid: int
    lsn: str
    #: The WAL segment holding its commit, archived before the restore starts.
    wal_file: str
    #: Rows of every user table exactly as of the sentinel's commit.
    row_counts: list[TableRows] = []
    #: Milliseconds writers to user tables waited for the consistent count (see docs).
    write_pause_ms: float = 0.0


class VerifyStep(Model):
    """One step of a restore verification on one host."""

    spec: ClusterSpec
    host: str
    backup: BackupRecord
    sentinel: Sentinel
    target_time: AwareDatetime | None = None

    @property
    def target(self) -> HostTarget:
        return self.spec.target(self.host)


class RepositoryProof(Model):
    """What `pgbackrest verify` and the WAL chain walk found for one set."""

    seconds: float
    #: Damage that makes the set unusable for this restore (empty: sound).
    problems: list[str] = []
    #: Damage elsewhere in the repository (other sets, WAL the set does not need).
    warnings: list[str] = []
    #: The WAL the restore needs, as timeline spans (first to last segment).
    needed_wal: list[str] = []


class RestoreOutcome(Model):
    """A restore and recovery of the set into scratch space."""

    ok: bool
    reason: str = ""
    restore_s: float = 0.0
    recovery_s: float = 0.0
    wal_segments: int = 0
    last_segment: str = ""
    restored_bytes: int = 0
    log_tail: list[str] = []


class CheckOutcome(Model):
    """One proof the restored copy gave (or failed to give)."""

    name: str
    passed: bool
    detail: str = ""
    seconds: float = 0.0


class VerifyReport(Model):
    """The outcome of one restore verification: kept by the report store, shown by
    `pgha report` and `pgha backups`."""

    cluster: str
    stanza: str
    workflow_id: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    passed: bool
    #: Why it failed (the first failed check), empty when it passed.
    reason: str = ""
    #: The host the set was restored on, and where.
    target_host: str
    scratch_path: str
    backup: BackupRecord | None = None
    target_time: AwareDatetime | None = None
    sentinel: Sentinel | None = None
    #: Whether the sentinel should be in the restored copy (False for a time before it).
    sentinel_expected: bool = True
    checks: list[CheckOutcome] = []
    #: Seconds per phase: sentinel, verify, restore, recovery, checks, teardown, total.
    timings: dict[str, float] = {}
    #: Bytes: restored data directory, WAL replayed.
    sizes: dict[str, int] = {}


class ScheduledRunInput(Model):
    """What a schedule starts: one kind of run of one cluster, with the spec as of the last
    `pgha schedule sync`."""

    spec: ClusterSpec
    kind: ScheduleKind
    #: How long a run waits for another operation holding the cluster's lock to finish.
    busy_wait_s: float = Field(3600.0, ge=0)


class ScheduledRunResult(Model):
    kind: ScheduleKind
    #: The child operation's workflow id (the cluster's lock id) and run id; empty if skipped.
    workflow_id: str = ""
    run_id: str = ""
    skipped: bool = False
    reason: str = ""
    started_at: datetime | None = None


class BackupSets(Model):
    """What the repository holds for the cluster's stanza (`pgbackrest info`)."""

    stanza: str
    status: str
    sets: list[BackupRecord] = []
    #: Oldest and newest archived WAL segment names.
    wal_min: str = ""
    wal_max: str = ""


class BackupsOverviewInput(Model):
    spec: ClusterSpec


class BackupsOverview(Model):
    """What `pgha backups` shows: the sets, and the last restore verification."""

    cluster: str
    sets: BackupSets | None = None
    #: Why the repository could not be read, when it could not.
    unreadable: str = ""
    last_verification: VerifyReport | None = None
    #: backup.verify.max_age_hours, to judge the last verification's age.
    verification_max_age_hours: float
