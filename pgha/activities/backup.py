"""Backup activities on the repository host: what the repository holds, and one backup
(archiving proven by `pgbackrest check` first, retention applied after)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from temporalio import activity

from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import param, permanent, translated
from pgha.activities.haproxy import PERMANENT, require_role
from pgha.backup_models import BackupRecord, BackupSets, BackupType
from pgha.hosts.facts.pgbackrest import Account, BackupInfo, StanzaInfo, account
from pgha.hosts.host import Host
from pgha.hosts.ops import pgbackrest as ops
from pgha.render.pgbackrest import REPO_USER
from pgha.spec import Role
from pgha.steps import HostStep

#: Bound on one backup (params["within_s"] overrides); the workflow's timeout is longer.
BACKUP_WITHIN_S = 6 * 3600.0


def record(b: BackupInfo) -> BackupRecord:
    return BackupRecord(
        label=b.label,
        type=BackupType(b.type),
        started=datetime.fromtimestamp(b.start, UTC),
        stopped=datetime.fromtimestamp(b.stop, UTC),
        size_bytes=b.size,
        repo_size_bytes=b.repo_size,
        wal_start=b.archive_start,
        wal_stop=b.archive_stop,
        lsn_start=b.lsn_start,
        lsn_stop=b.lsn_stop,
        prior=b.prior,
        archive_id=b.archive_id,
    )


def sets_of(info: StanzaInfo) -> BackupSets:
    return BackupSets(
        stanza=info.name,
        status=info.status_message,
        sets=[record(b) for b in info.backups if not b.error],
        wal_min=info.wal_min,
        wal_max=info.wal_max,
    )


def _failed(err: ops.PgbackrestFailed) -> Exception:
    return permanent(str(err), "PgbackrestFailed") if err.permanent else err


@asynccontextmanager
async def _on_repository(step: HostStep) -> AsyncIterator[tuple[Host, Account]]:
    """The repository host, connected and heartbeating, with the user that owns the
    repository. pgBackRest's permanent failures stop the retries; the others are retried.

    :raises ApplicationError: the step is not on the repository host, or pgBackRest was
        never set up there (BackupsNotSetUp: run provision).
    """
    async with translated(*PERMANENT):
        require_role(step, Role.backup_repo)
    async with heartbeating(), open_host(step.target) as host:
        acct = await account(host, REPO_USER)
        if acct is None:
            raise permanent(
                f"host {step.host}: no user {REPO_USER}; pgBackRest is not set up here "
                "(run provision)",
                "BackupsNotSetUp",
            )
        try:
            yield host, acct
        except ops.PgbackrestFailed as err:
            raise _failed(err) from None


@activity.defn(name="backup.list_sets")
async def list_sets(step: HostStep) -> BackupSets:
    """The stanza's backup sets, oldest first (`pgbackrest info`). Read-only."""
    async with _on_repository(step) as (host, acct):
        info = await ops.stanza_info(host, acct, step.spec.stanza)
    return sets_of(info)


@activity.defn(name="backup.check_archiving")
async def check_archiving(step: HostStep) -> float:
    """`pgbackrest check` from the repository host: the stanza is sound and the primary's
    WAL reaches the repository. Returns the seconds it took.

    :raises ApplicationError: ArchivingBroken (non-retryable) with pgBackRest's lines when
        archiving is off or goes elsewhere; other failures are retried.
    """
    async with _on_repository(step) as (host, acct):
        try:
            return await ops.check(host, acct, step.spec.stanza)
        except ops.PgbackrestFailed as err:
            if err.permanent or err.code in ops.ARCHIVING_OFF:
                raise permanent(str(err), "ArchivingBroken") from None
            raise


@activity.defn(name="backup.take")
async def take(step: HostStep) -> BackupRecord:
    """One new backup of ``params["type"]``; ``params["known"]`` is the JSON list of
    labels that existed before the workflow started it, so a retry after a lost worker
    finds the set it already took (or waits for the one still running) instead of taking
    a second. Heartbeats throughout.
    """
    kind = BackupType(param(step, "type"))
    known = set(json.loads(step.params.get("known", "[]")))
    within = float(step.params.get("within_s", BACKUP_WITHIN_S))
    async with _on_repository(step) as (host, acct):
        new, _ = await ops.take_backup(
            host, acct, step.spec.stanza, kind.value, known=known, within=within,
            progress=activity.heartbeat,
        )  # fmt: skip
    return record(new)


@activity.defn(name="backup.expire")
async def expire(step: HostStep) -> list[str]:
    """Retention (`pgbackrest expire` under the spec's repo1-retention-*); the labels it
    removed. Idempotent: a second run removes nothing."""
    async with _on_repository(step) as (host, acct):
        return await ops.expire(host, acct, step.spec.stanza)
