"""Fake backup and restore-verification activities under the real names: a small
in-memory repository, a configurable cluster, and a log of every call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from pgha.backup_models import (
    BackupRecord,
    BackupResult,
    BackupSets,
    BackupType,
    CheckOutcome,
    RepositoryProof,
    RestoreOutcome,
    Sentinel,
    TableRows,
    VerifyReport,
    VerifyStep,
)
from pgha.status_models import Member, PatroniStatus
from pgha.steps import HostStep

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def backup_record(label: str, kind: BackupType, at: datetime) -> BackupRecord:
    return BackupRecord(
        label=label, type=kind, started=at, stopped=at + timedelta(seconds=30),
        size_bytes=40 << 20, repo_size_bytes=4 << 20, wal_start="000000010000000000000005",
        wal_stop="000000010000000000000006", archive_id="15-1",
    )  # fmt: skip


class FakeCluster:
    """What the fakes answer; ``calls`` is (activity, host) in call order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.leader: str | None = "db1"
        self.archiving_ok = True
        self.sets = [backup_record("20261126-010000F", BackupType.full, T0)]
        self.take_failures = 0  # attempts of backup.take that fail before one succeeds
        self.checks: list[CheckOutcome] = [
            CheckOutcome(name=n, passed=True, detail="ok")
            for n in ("sentinel", "pg_amcheck", "read every page", "row counts")
        ]
        self.repository_problems: list[str] = []
        self.restore_hangs = False
        self.restore_started = asyncio.Event()
        self.saved: list[Any] = []
        self.takes_known: list[list[str]] = []

    def activities(self) -> list[Callable[..., Any]]:
        c = self

        @activity.defn(name="status.patroni")
        async def patroni(step: HostStep) -> PatroniStatus:
            c.calls.append(("status.patroni", step.host))
            members = [
                Member(name=h, host=h, role="leader" if h == c.leader else "replica",
                       state="running")
                for h in ("db1", "db2", "db3")
            ]  # fmt: skip
            return PatroniStatus(members=members, source=step.host)

        @activity.defn(name="backup.check_archiving")
        async def check_archiving(step: HostStep) -> float:
            c.calls.append(("backup.check_archiving", step.host))
            if not c.archiving_ok:
                raise ApplicationError(
                    "archive_command does not run pgBackRest", type="ArchivingBroken",
                    non_retryable=True,
                )  # fmt: skip
            return 1.5

        @activity.defn(name="backup.list_sets")
        async def list_sets(step: HostStep) -> BackupSets:
            c.calls.append(("backup.list_sets", step.host))
            return BackupSets(stanza=step.spec.stanza, status="ok", sets=list(c.sets))

        @activity.defn(name="backup.take")
        async def take(step: HostStep) -> BackupRecord:
            c.calls.append(("backup.take", step.host))
            c.takes_known.append(sorted(__import__("json").loads(step.params["known"])))
            if activity.info().attempt <= c.take_failures:
                raise RuntimeError("the repository host went away")
            kind = BackupType(step.params["type"])
            new = backup_record(f"20261126-02000{len(c.sets)}{kind.value[0].upper()}", kind,
                                T0 + timedelta(hours=len(c.sets)))  # fmt: skip
            c.sets.append(new)
            return new

        @activity.defn(name="backup.expire")
        async def expire(step: HostStep) -> list[str]:
            c.calls.append(("backup.expire", step.host))
            return []

        @activity.defn(name="verify.write_sentinel")
        async def write_sentinel(step: HostStep) -> Sentinel:
            c.calls.append(("verify.write_sentinel", step.host))
            return Sentinel(
                value=step.params["value"], written_at=T0 + timedelta(days=1), xid=758,
                lsn="0/110016B8", wal_file="000000010000000000000011",
                row_counts=[TableRows(database="app", schema_name="public", table="t", rows=5)],
            )  # fmt: skip

        @activity.defn(name="verify.check_repository")
        async def check_repository(step: VerifyStep) -> RepositoryProof:
            c.calls.append(("verify.check_repository", step.host))
            return RepositoryProof(seconds=0.5, problems=c.repository_problems,
                                   needed_wal=["000000010000000000000005..11"])  # fmt: skip

        @activity.defn(name="verify.restore")
        async def restore(step: VerifyStep) -> RestoreOutcome:
            c.calls.append(("verify.restore", step.host))
            c.restore_started.set()
            while c.restore_hangs:
                activity.heartbeat()
                await asyncio.sleep(0.2)
            return RestoreOutcome(ok=True, restore_s=1.0, recovery_s=2.0, wal_segments=7,
                                  restored_bytes=80 << 20)  # fmt: skip

        @activity.defn(name="verify.prove")
        async def prove(step: VerifyStep) -> list[CheckOutcome]:
            c.calls.append(("verify.prove", step.host))
            return list(c.checks)

        @activity.defn(name="verify.teardown")
        async def teardown(step: HostStep) -> bool:
            c.calls.append(("verify.teardown", step.host))
            return True

        @activity.defn(name="reports.save_verification")
        async def save_verification(report: VerifyReport) -> str:
            c.calls.append(("reports.save_verification", ""))
            c.saved.append(report)
            return "report-1"

        @activity.defn(name="reports.save_backup")
        async def save_backup(result: BackupResult) -> str:
            c.calls.append(("reports.save_backup", ""))
            c.saved.append(result)
            return "report-2"

        return [patroni, check_archiving, list_sets, take, expire, write_sentinel,
                check_repository, restore, prove, teardown, save_verification,
                save_backup]  # fmt: skip

    def called(self, name: str) -> list[str]:
        return [h for a, h in self.calls if a == name]
