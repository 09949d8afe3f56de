"""Backups and restore verification on the provisioned lab, checked past pgha where it
can be: `pgbackrest info` on the repository host, the sentinel row on the primary, the
scratch directory and processes on the verify host, the repository's timelines.

Damage is made by hand in the repository (a data file of a set, a WAL segment) and always
put back, so the lab stays usable for the tests after these.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from pgha.backup_models import (
    BackupResult,
    BackupType,
    ScheduledRunResult,
    ScheduleKind,
    VerifyReport,
)
from pgha.operations import PROVISION
from pgha.provision_models import ProvisionInput
from pgha.reports import ReportKind, latest_report
from pgha.schedules import list_schedules, sync_schedules, trigger_schedule
from pgha.spec import BackupSchedule, ClusterSpec
from pgha.worker import build_worker
from tests.lab.backup_helpers import Lab, info, primary, psql, sh
from tests.lab.helpers import docker_exec

pytestmark = pytest.mark.lab

REPO = "/var/lib/pgbackrest"


@pytest_asyncio.fixture(scope="module")
async def lab_cluster(env: WorkflowEnvironment, lab_spec: ClusterSpec) -> AsyncIterator[Lab]:
    """The lab cluster, provisioned (a re-run when it already is: seconds) by a real worker
    that stays up for the module."""
    task_queue = f"backups-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue):
        lab = Lab(env, lab_spec, task_queue)
        await lab.run(PROVISION, ProvisionInput(spec=lab_spec))
        yield lab


async def test_full_then_incremental_backup_seen_in_the_repository(lab_cluster: Lab) -> None:
    full = await lab_cluster.backup(BackupType.full)
    incr = await lab_cluster.backup(BackupType.incr)
    sets = {b["label"]: b for b in (await info(lab_cluster))["backup"]}
    assert sets[full.backup.label]["type"] == "full"
    assert sets[incr.backup.label]["type"] == "incr"
    assert sets[incr.backup.label]["prior"] == full.backup.label
    assert incr.backup.wal_start == sets[incr.backup.label]["archive"]["start"]
    assert incr.backup.size_bytes > 0 and incr.backup.repo_size_bytes > 0
    assert incr.primary == await primary(lab_cluster)
    # Retention (full: 2 in the lab's spec) keeps at most two full sets.
    fulls = [b for b in sets.values() if b["type"] == "full"]
    assert len(fulls) <= lab_cluster.spec.backup.retention.full
    stored = latest_report(lab_cluster.spec.cluster, ReportKind.backup)
    assert stored is not None and incr.backup.label in stored.headline


async def timelines_in_repository(lab: Lab) -> set[str]:
    out = await sh(lab.repo, f"ls {REPO}/archive/{lab.spec.stanza}/*/ | grep history || true")
    return set(out.split())


async def test_verify_restore_passes_and_leaves_nothing_behind(lab_cluster: Lab) -> None:
    leader = await primary(lab_cluster)
    await psql(
        leader,
        "CREATE TABLE IF NOT EXISTS verify_rows (id bigserial PRIMARY KEY, payload text); "
        "INSERT INTO verify_rows (payload) "
        "SELECT repeat(md5(g::text), 40) FROM generate_series(1, 3000) g",
    )
    histories = await timelines_in_repository(lab_cluster)
    report = await lab_cluster.verify()
    assert report.passed, report.reason
    assert [c.name for c in report.checks] == [
        "repository",
        "restore and recovery",
        "sentinel",
        "pg_amcheck",
        "read every page",
        "row counts",
        "teardown",
    ][: len(report.checks)]
    assert all(c.passed for c in report.checks), report.checks
    assert report.sentinel is not None
    # Past pgha: the sentinel is on the primary, and the counts were of the real table.
    value = report.sentinel.value
    assert await psql(leader, f"SELECT count(*) FROM pgha.restore_sentinel WHERE value = "
                              f"'{value}'", db="postgres") == "1"  # fmt: skip
    counted = {r.name: r.rows for r in report.sentinel.row_counts}
    assert counted["app.public.verify_rows"] >= 3000
    # Nothing left on the verify host, and the promoted copy pushed nothing (its new
    # timeline's history file would be in the repository).
    scratch = report.scratch_path
    assert (await docker_exec(lab_cluster.verify_host, "test", "-e", scratch))[0] == 1
    code, procs = await docker_exec(lab_cluster.verify_host, "pgrep", "-af", "pgha-verify")
    assert code == 1, procs
    assert await timelines_in_repository(lab_cluster) == histories
    assert report.timings["total"] > 0 and report.sizes["restored_bytes"] > 0


async def test_point_in_time_before_the_sentinel_finds_no_sentinel(lab_cluster: Lab) -> None:
    leader = await primary(lab_cluster)
    await lab_cluster.backup(BackupType.incr)  # a set that ends before the target time
    await psql(leader, "CREATE TABLE IF NOT EXISTS pitr_marks (at timestamptz); "
                       "INSERT INTO pitr_marks VALUES (now())")  # fmt: skip
    await asyncio.sleep(1.5)
    target = datetime.now(UTC)
    await asyncio.sleep(1.5)
    report = await lab_cluster.verify(target_time=target)
    assert report.passed, report.reason
    assert report.target_time == target and report.sentinel_expected is False
    (sentinel,) = [c for c in report.checks if c.name == "sentinel"]
    assert sentinel.passed and "absent" in sentinel.detail
    assert "row counts" not in [c.name for c in report.checks]


async def with_file_moved(
    host: str, path: str, damage: Callable[[], Awaitable[None]], run: Callable[[], Awaitable[Any]]
) -> Any:
    """Run ``run`` with ``path`` damaged by ``damage``; the original is always put back."""
    await sh(host, f"cp -p {path} /tmp/pgha-test-original")
    try:
        await damage()
        return await run()
    finally:
        await sh(host, f"mv -f /tmp/pgha-test-original {path}")


async def test_damaged_data_file_of_the_set_fails_verification_naming_it(lab_cluster: Lab) -> None:
    newest = (await lab_cluster.backup(BackupType.full)).backup.label  # holds every file
    set_dir = f"{REPO}/backup/{lab_cluster.spec.stanza}/{newest}"
    victim = await sh(
        lab_cluster.repo, f"find {set_dir}/pg_data/base -name '*.zst' -size +1k | head -n 1"
    )
    assert victim, "the new full set has no data file to damage"

    async def damage() -> None:
        await sh(lab_cluster.repo, f"printf XXXX | dd of={victim} bs=1 seek=200 conv=notrunc")

    failure = await with_file_moved(lab_cluster.repo, victim, damage, lab_cluster.failed_verify)
    assert failure.type == "RestoreVerificationFailed"
    relative = victim.split(f"/{lab_cluster.spec.stanza}/", 1)[1]
    assert f"invalid checksum {relative}" in failure.message
    (report,) = failure.details
    assert VerifyReport.model_validate(report).passed is False
    stored = latest_report(lab_cluster.spec.cluster, ReportKind.verify_restore)
    assert stored is not None and stored.passed is False


async def test_missing_wal_segment_fails_verification_naming_it(lab_cluster: Lab) -> None:
    newest = (await info(lab_cluster))["backup"][-1]
    start = newest["archive"]["start"]
    # The segment after the set's first one: the restore needs it to reach the sentinel.
    archived = await sh(lab_cluster.repo, f"ls {REPO}/archive/{lab_cluster.spec.stanza}/*/"
                                          f"{start[:16]}/ | grep -v backup | sort")  # fmt: skip
    later = [f for f in archived.split() if f[:24] > start and f[:8] == start[:8]]
    assert later, f"no segment archived after {start}"
    segment = later[0][:24]
    path = await sh(lab_cluster.repo, f"ls {REPO}/archive/{lab_cluster.spec.stanza}/*/"
                                      f"{start[:16]}/{later[0]}")  # fmt: skip

    async def damage() -> None:
        await sh(lab_cluster.repo, f"rm -f {path}")

    failure = await with_file_moved(lab_cluster.repo, path, damage, lab_cluster.failed_verify)
    assert failure.type == "RestoreVerificationFailed"
    assert f"WAL {segment} is missing from the repository" in failure.message
    # Put back, the same set verifies again.
    assert (await lab_cluster.verify()).passed


async def test_schedules_follow_the_spec_and_a_triggered_one_takes_a_real_backup(
    lab_cluster: Lab,
) -> None:
    client, spec = lab_cluster.env.client, lab_cluster.spec
    schedule = spec.backup.schedule
    every = spec.model_copy(update={"backup": spec.backup.model_copy(update={
        "schedule": schedule.model_copy(update={"incr": "30 * * * *"})})})  # fmt: skip
    created = await sync_schedules(client, every, lab_cluster.task_queue)
    try:
        assert f"pgha:{spec.cluster}:incr" in created.created + created.updated
        again = await sync_schedules(client, every, lab_cluster.task_queue)
        assert again.created == again.updated == again.deleted == []
        rows = {r.kind: r for r in await list_schedules(client, spec.cluster)}
        assert rows[ScheduleKind.incr].cron == "30 * * * *" and rows[ScheduleKind.incr].next_runs

        before = {b["label"] for b in (await info(lab_cluster))["backup"]}
        trigger = await trigger_schedule(client, spec.cluster, ScheduleKind.incr)
        assert trigger.workflow_id is not None, trigger
        run = ScheduledRunResult.model_validate(
            await client.get_workflow_handle(trigger.workflow_id).result()
        )
        assert run.workflow_id == f"pgha-op:{spec.cluster}" and not run.skipped
        child = await client.get_workflow_handle(run.workflow_id, run_id=run.run_id).result()
        taken = BackupResult.model_validate(child).backup
        after = {b["label"] for b in (await info(lab_cluster))["backup"]}
        assert taken.label in after - before and taken.type == BackupType.incr
    finally:
        # The spec without the incr schedule: sync removes exactly that one.
        removed = await sync_schedules(client, spec, lab_cluster.task_queue)
        nothing = BackupSchedule(full=None, diff=None, incr=None, verify_restore=None)
        none = spec.model_copy(update={"backup": spec.backup.model_copy(update={
            "schedule": nothing})})  # fmt: skip
        await sync_schedules(client, none, lab_cluster.task_queue)  # none fire mid-session
        assert removed.deleted == [f"pgha:{spec.cluster}:incr"]
