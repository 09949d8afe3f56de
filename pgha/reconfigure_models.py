"""What reconfigure plans, applies and reports. Pure models shared by the Reconfigure
workflow, its activities and the CLI."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from pgha.models import Model
from pgha.rolling_models import Decision
from pgha.spec import ClusterSpec


class SettingChange(Model):
    #: "dcs" (cluster-wide, Patroni's dynamic config) or the member whose file holds it.
    scope: str
    #: Dotted path: ttl, postgresql.parameters.work_mem...
    key: str
    old: str | None
    new: str | None
    #: PostgreSQL applies it only at a restart (pg_settings.context = postmaster).
    restart: bool = False


class FileChange(Model):
    host: str
    path: str
    #: The service that takes it, and how: reload (hitless) or restart.
    service: str
    apply: str = "reload"


class ReconfigurePlan(Model):
    changes: list[SettingChange] = []
    files: list[FileChange] = []
    #: The leader when planned, and parameters the change lowers below what standbys had.
    leader: str = ""
    lowered: list[str] = []

    @property
    def empty(self) -> bool:
        return not (self.changes or self.files)

    @property
    def restarts(self) -> bool:
        return any(c.restart for c in self.changes)


class ReconfigureInput(Model):
    spec: ClusterSpec
    #: Print the plan and change nothing.
    dry_run: bool = False
    rate: float = Field(20.0, gt=0, le=200)
    max_lag_bytes: int = Field(16 * 1024 * 1024, ge=0)
    member_timeout_s: float = Field(180.0, ge=10)


class ReconfigureReport(Model):
    cluster: str
    workflow_id: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    passed: bool
    reason: str = ""
    dry_run: bool = False
    plan: ReconfigurePlan
    #: Members restarted (in order), and whether a switchover was made.
    restarted: list[str] = []
    switchover: str = ""
    write_down_s: float | None = None
    failed_reads: int | None = None
    lost: int | None = None
    decisions: list[Decision] = []
