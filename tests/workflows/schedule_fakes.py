"""Stand-ins for the real Backup and VerifyRestore workflows (same type names): they return
the input they were started with, so a test can read what a scheduled run passed on."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.backup_models import BackupInput, VerifyRestoreInput


@workflow.defn(name="Backup")
class FakeBackup:
    @workflow.run
    async def run(self, inp: BackupInput) -> BackupInput:
        return inp


@workflow.defn(name="VerifyRestore")
class FakeVerifyRestore:
    @workflow.run
    async def run(self, inp: VerifyRestoreInput) -> VerifyRestoreInput:
        return inp


ARCHIVING_BROKEN = "pgbackrest check on db1: WAL segment 000000010000000000000003 was not archived"


@workflow.defn(name="Backup")
class FailingBackup:
    @workflow.run
    async def run(self, inp: BackupInput) -> BackupInput:
        raise ApplicationError(ARCHIVING_BROKEN, type="ArchivingBroken", non_retryable=True)
