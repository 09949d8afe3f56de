"""Unblock the primary's WAL archiver when it is stuck on an older timeline's segment the
repository already holds with other content (pgha/checks/stale_ready.py says why and what
is safe). Runs on the primary's host; never writes to the archive, never deletes."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import permanent
from pgha.checks.stale_ready import DIFFERENT_COPY_CODE, mark_archived_script, stale_ready_segments
from pgha.errors import CommandFailed
from pgha.hosts.facts.patroni import psql
from pgha.hosts.host import Host
from pgha.steps import HostStep, StepResult

#: Where kept copies go: beside the data directories, outside them (a base backup or a
#: pg_basebackup must not carry them).
KEEP_ROOT = "/var/lib/postgresql/pgha-set-aside-wal"
#: The primary's current timeline, as the first 8 hex digits of the WAL file being written.
TIMELINE_SQL = "SELECT substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8)"


async def current_timeline(host: Host, port: int) -> int:
    """The timeline the primary on ``host`` writes.

    :raises ApplicationError: NotPrimary (non-retryable) when PostgreSQL there is in recovery.
    """
    out = await host.run(psql(port, TIMELINE_SQL), check=False, label="psql timeline")
    if not out.ok:
        if "recovery is in progress" in out.stderr:
            raise permanent(
                f"host {host.name}: PostgreSQL is a replica; run this on the primary",
                "NotPrimary",
            )
        raise CommandFailed(host.name, host.address, out.command, out.exit_code, out.stderr)
    return int(out.stdout.strip(), 16)


async def refused_as_different(host: Host, stanza: str, path: str) -> tuple[bool, str]:
    """Offer one segment to pgBackRest as the archiver would. True when pgBackRest refuses
    it because the repository holds another copy ([045]); also what it said."""
    cmd = ["runuser", "-u", "postgres", "--", "pgbackrest", f"--stanza={stanza}",
           "archive-push", path]  # fmt: skip
    out = await host.run(cmd, check=False, label="archive-push", timeout=120)
    said = (out.stderr or out.stdout).strip().splitlines()
    return out.exit_code == DIFFERENT_COPY_CODE, said[-1] if said else f"exit {out.exit_code}"


@activity.defn(name="archiving.release_stale_ready")
async def release_stale_ready(step: HostStep) -> StepResult:
    """On the primary ``step.host``: mark archived every older-timeline segment the
    archiver is held on and the repository holds with other content, keeping a copy in
    ``/var/lib/postgresql/pgha-set-aside-wal/<UTC stamp>/``. Idempotent: nothing to do
    the second time.

    facts: ``marked`` (segments marked, comma-separated), ``kept_in``, ``timeline``.
    :raises ApplicationError: NotPrimary (non-retryable) on a replica.
    """
    spec = step.spec
    pg_wal = f"{spec.postgres.data_path}/pg_wal"
    async with heartbeating(), open_host(step.target) as host:
        timeline = await current_timeline(host, spec.postgres.port)
        listed = await host.run(["ls", "-1", f"{pg_wal}/archive_status"], label="archive_status")
        stale = stale_ready_segments(listed.stdout.split(), timeline)
        refused: list[str] = []
        left: list[str] = []
        for seg in stale:
            different, said = await refused_as_different(host, spec.stanza, f"{pg_wal}/{seg}")
            if different:
                refused.append(seg)
            else:  # pushed now, or refused for another reason: the archiver's business
                left.append(f"{seg} ({said})")
        marked: list[str] = []
        keep = ""
        if refused:
            keep = f"{KEEP_ROOT}/{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
            script = mark_archived_script(pg_wal, keep, refused)
            out = await host.run(["runuser", "-u", "postgres", "--", "sh", "-c", script],
                                 label="mark archived", timeout=120)  # fmt: skip
            marked = out.stdout.split()
    parts: list[str] = []
    if marked:
        parts.append(
            f"marked archived {', '.join(marked)} (timeline older than the primary's "
            f"{timeline}; the repository holds other content under that name), local "
            f"copies kept in {keep}"
        )
    if left:
        parts.append(f"left alone: {'; '.join(left)}")
    summary = "; ".join(parts) or (
        f"no segment of a timeline older than {timeline} waits for the archiver"
    )
    activity.logger.info("%s: %s", step.host, summary)
    return StepResult(
        host=step.host,
        changed=bool(marked),
        summary=summary,
        facts={"marked": ",".join(marked), "kept_in": keep, "timeline": str(timeline)},
    )
