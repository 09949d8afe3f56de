"""Backup: one pgBackRest backup of the cluster, refused unless it can succeed and mean
something, recorded, then retention."""

from __future__ import annotations

import json

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.backup_models import BackupInput, BackupRecord, BackupResult, BackupSets
    from pgha.progress import Progress, StepState
    from pgha.report_text import human_bytes
    from pgha.spec import Role
    from pgha.steps import HostStep
    from pgha.workflows.policy import CLUSTER_WAIT, LOCAL_WRITE, LONG_RUN, STATUS_READ
    from pgha.workflows.primary import healthy_primary
    from pgha.workflows.tracker import Tracker


@workflow.defn(name="Backup")
class Backup:
    """Runbook: a running Patroni leader, or refuse; `pgbackrest check` (WAL reaches the
    repository), or refuse; note the sets there are; take the backup from the repository
    host (files from a standby when backup.from_standby); apply retention (`expire`);
    record label, type, sizes, duration and WAL range in the report store."""

    def __init__(self) -> None:
        self.tracker = Tracker("backup", "")

    @workflow.query(name="progress")
    def progress(self) -> Progress:
        return self.tracker.progress

    @workflow.run
    async def run(self, inp: BackupInput) -> BackupResult:
        spec = inp.spec
        self.tracker = Tracker("backup", spec.cluster)
        self.tracker.tag_search_attributes()
        repos = spec.hosts_with(Role.backup_repo)
        if not spec.backup.enabled or len(repos) != 1:
            raise ApplicationError(
                f"cluster {spec.cluster}: backups are not configured (backup.enabled and one "
                "backup-repo host are needed in the spec)",
                type="InvalidSpec",
                non_retryable=True,
            )
        repo = HostStep(spec=spec, host=repos[0].name)

        self.tracker.phase("checks")
        primary = await self.tracker.run(
            "primary", "a running primary", None, healthy_primary(spec),
            lambda p: (StepState.ok, f"{p} leads and runs"),
        )  # fmt: skip
        check_s = await self.tracker.run(
            "archiving", "archiving works (pgbackrest check)", repo.host,
            CLUSTER_WAIT.execute("backup.check_archiving", repo, float,
                                 summary="pgbackrest check"),
            lambda s: (StepState.ok, f"WAL reached the repository; check took {s:.1f} s"),
        )  # fmt: skip

        self.tracker.phase("backup")
        before = await STATUS_READ.execute(
            "backup.list_sets", repo, BackupSets, summary="sets before the backup"
        )
        known = [b.label for b in before.sets]
        source = "a standby" if spec.backup.from_standby else primary
        take = repo.model_copy(
            update={"params": {"type": inp.type.value, "known": json.dumps(known)}}
        )
        new = await self.tracker.run(
            "backup", f"{inp.type.value} backup (files from {source})", repo.host,
            LONG_RUN.execute("backup.take", take, BackupRecord,
                             summary=f"pgbackrest --type={inp.type.value} backup"),
            lambda b: (StepState.changed, f"{b.label}: {human_bytes(b.size_bytes)} "
                       f"({human_bytes(b.repo_size_bytes)} stored) in {b.duration_s:.0f} s, "
                       f"WAL {b.wal_start}..{b.wal_stop}"),
        )  # fmt: skip
        if new.type != inp.type:
            self.tracker.add("type", "backup type", repo.host)
            self.tracker.finish(
                "type",
                StepState.warning,
                f"pgBackRest took a {new.type.value} backup instead of {inp.type.value}: "
                "there was no prior full backup to build on",
            )

        self.tracker.phase("retention")
        expired = await self.tracker.run(
            "expire", "retention (pgbackrest expire)", repo.host,
            CLUSTER_WAIT.execute("backup.expire", repo, list[str], summary="pgbackrest expire"),
            lambda gone: (StepState.changed if gone else StepState.ok,
                          f"expired {', '.join(gone)}" if gone else "nothing to expire"),
        )  # fmt: skip
        after = await STATUS_READ.execute(
            "backup.list_sets", repo, BackupSets, summary="sets after the backup"
        )
        result = BackupResult(
            cluster=spec.cluster,
            stanza=spec.stanza,
            backup=new,
            expired=expired,
            check_s=round(check_s, 2),
            primary=primary,
            sets=after.sets,
        )
        await LOCAL_WRITE.execute(
            "reports.save_backup", result, str, summary="save the backup report"
        )
        self.tracker.done(
            f"{new.type.value} backup {new.label} of {spec.cluster}: {human_bytes(new.size_bytes)} "
            f"in {new.duration_s:.0f} s; {len(after.sets)} sets kept"
        )
        return result
