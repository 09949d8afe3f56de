"""Failover drills on the provisioned lab, checked past pgha: the fault is seen with
patronictl and the postmaster's pid, and a writer of the test's own (not pgha's probe)
inserts through the VIP during the drill; its acknowledged rows must all be there."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from pgha.activities.archiving import release_stale_ready
from pgha.activities.backup import check_archiving
from pgha.activities.drill import set_aside_dead_timelines
from pgha.drill_models import DrillInput, Scenario
from pgha.operations import DRILL, PROVISION, start_operation
from pgha.provision_models import ProvisionInput
from pgha.spec import ClusterSpec, Role
from pgha.steps import HostStep
from pgha.worker import build_worker
from tests.lab.backup_helpers import Lab, sh
from tests.lab.drill_helpers import (
    Observer,
    container_states,
    drill,
    leader,
    patroni_members,
    verdict_matches_rows,
)
from tests.lab.helpers import docker_exec, eventually

pytestmark = pytest.mark.lab


@pytest_asyncio.fixture(scope="module")
async def lab_cluster(env: WorkflowEnvironment, lab_spec: ClusterSpec) -> AsyncIterator[Lab]:
    task_queue = f"drills-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue):
        lab = Lab(env, lab_spec, task_queue)
        await lab.run(PROVISION, ProvisionInput(spec=lab_spec))
        yield lab


async def test_switchover_moves_the_leader_and_loses_no_acknowledged_write(
    lab_cluster: Lab,
) -> None:
    before = await leader()
    started = time.monotonic()
    report, writer = await drill(lab_cluster, Scenario.switchover)
    after = await leader()
    assert after != before and report.old_leader == before and report.new_leader == after
    assert set(writer.acked) <= await writer.present()  # the rows, not the report
    assert report.passed and report.healed and report.verdict is not None
    assert report.verdict.safe and report.verdict.acknowledged > 20
    assert 0 < report.verdict.write_gap_s < time.monotonic() - started
    members = await patroni_members()
    assert all(m["State"] in ("running", "streaming") for m in members.values()), members


async def test_kill_postgres_restarts_or_fails_over_and_loses_nothing(lab_cluster: Lab) -> None:
    primary = await leader()
    data = lab_cluster.spec.postgres.data_path
    pid_before = await sh(primary, f"head -n 1 {data}/postmaster.pid")
    report, writer = await drill(lab_cluster, Scenario.kill_postgres)
    pid_after = await sh(primary, f"head -n 1 {data}/postmaster.pid")
    assert pid_after != pid_before  # the postmaster really died (and came back)
    assert set(writer.acked) <= await writer.present()
    assert report.passed and report.healed and report.verdict is not None
    assert report.verdict.safe and report.verdict.write_gap_s > 0


async def test_stop_patroni_fails_over_and_the_old_primary_rejoins(lab_cluster: Lab) -> None:
    primary = await leader()
    observer = Observer([primary], "systemctl is-active patroni")
    report, writer = await drill(lab_cluster, Scenario.stop_patroni, observer)
    assert "inactive" in observer.seen[primary]  # Patroni really stopped there
    assert await leader() != primary
    members = await patroni_members()
    assert members[primary]["Role"] in ("Replica", "Sync Standby")
    assert members[primary]["State"] in ("running", "streaming")
    assert set(writer.acked) <= await writer.present()
    assert report.passed and report.verdict is not None and report.verdict.safe


async def test_etcd_member_loss_keeps_the_leader_and_the_writes(lab_cluster: Lab) -> None:
    etcd = [h.name for h in lab_cluster.spec.hosts if "etcd" in h.roles]
    primary = await leader()
    observer = Observer(etcd, "systemctl is-active etcd")
    report, writer = await drill(lab_cluster, Scenario.etcd_member_loss, observer)
    assert sum("inactive" in seen for seen in observer.seen.values()) == 1
    assert await leader() == primary
    for h in etcd:
        assert (await docker_exec(h, "systemctl", "is-active", "etcd"))[1] == "active"
    assert set(writer.acked) <= await writer.present()
    assert report.passed and report.verdict is not None and report.verdict.write_gap_s < 1


async def test_proxy_loss_moves_the_vip_and_restarts_the_proxy(lab_cluster: Lab) -> None:
    spec = lab_cluster.spec
    assert spec.vip is not None
    proxies = [h.name for h in spec.hosts if "haproxy" in h.roles]
    vip = str(spec.vip.address.ip)
    observer = Observer(proxies, f"ip -o -4 addr show | grep -c ' {vip}/' || true")
    report, writer = await drill(lab_cluster, Scenario.proxy_loss, observer)
    assert all("1" in seen for seen in observer.seen.values())  # each held it at some point
    for p in proxies:
        assert (await docker_exec(p, "systemctl", "is-active", "haproxy", "keepalived"))[1] == (
            "active\nactive"
        )
    assert set(writer.acked) <= await writer.present()
    assert report.passed and report.verdict is not None and report.verdict.safe


async def test_host_loss_powers_the_primary_off_fails_over_and_brings_it_back(
    lab_cluster: Lab,
) -> None:
    primary = await leader()
    seen: dict[str, set[str]] = {}
    stop = asyncio.Event()
    watcher = asyncio.create_task(container_states([primary], seen, stop))
    try:
        report, _ = await drill(lab_cluster, Scenario.host_loss)
    finally:
        stop.set()
        await watcher
    assert "exited" in seen[primary] and "running" in seen[primary]  # really off, then on
    new = await leader()
    assert new != primary and report.new_leader == new
    members = await patroni_members(new)
    assert members[primary]["State"] in ("running", "streaming")
    await verdict_matches_rows(report)
    assert report.verdict is not None
    assert report.verdict.write_gap_s < lab_cluster.spec.patroni.ttl * 2  # the ttl bounds it


async def test_partition_cuts_the_primary_off_and_heals_it(lab_cluster: Lab) -> None:
    primary = await leader()
    observer = Observer([primary], "nft list table inet pgha_drill >/dev/null 2>&1 && echo cut")
    report, _ = await drill(lab_cluster, Scenario.partition_primary, observer)
    assert "cut" in observer.seen[primary]  # the rules were really there
    code, _ = await docker_exec(primary, "nft", "list", "table", "inet", "pgha_drill")
    assert code != 0  # and are gone
    assert await leader() != primary
    await verdict_matches_rows(report)


async def test_frozen_primary_is_replaced_and_the_writes_judged(lab_cluster: Lab) -> None:
    primary = await leader()
    # ps state T: stopped by a signal; the oldest postgres process is Patroni or postgres.
    observer = Observer([primary], "ps -o stat= -u postgres | grep -c '^T' || true")
    report, writer = await drill(lab_cluster, Scenario.freeze_primary, observer)
    assert any(n not in ("", "0") for n in observer.seen[primary])  # really frozen
    _, stopped = await docker_exec(
        primary, "sh", "-c", "ps -o stat= -u postgres | grep -c '^T' || true"
    )
    assert stopped == "0"  # and resumed
    # The lab's Patroni 3.0.2 without a watchdog takes one of two paths (a race): the
    # resumed old primary demotes itself, or it overwrites the key its successor took
    # (patroni/patroni#2689, fixed in 3.0.3) and the successor's acknowledged writes are
    # lost, its members diverged. Whichever: the cluster is whole again, the verdict
    # matches the rows, and when the test's own writer lost rows acknowledged after the
    # freeze (a second leader's, or the successor's) the drill failed red.
    members = await patroni_members()
    assert all(m["State"] in ("running", "streaming") for m in members.values()), members
    assert len({m.get("TL") for m in members.values()}) == 1, members
    await verdict_matches_rows(report)
    assert report.patroni_times is not None
    # The fault's clock is taken just before the SSH command that freezes: allow for it.
    frozen_at = report.patroni_times.fault_at + timedelta(seconds=2)
    present = await writer.present()
    lost = {s: at for s, at in writer.acked.items() if s not in present}
    late = sorted(s for s, at in lost.items() if at > frozen_at)
    if late:  # acknowledged while the old primary was frozen or after: by another leader
        assert not report.passed, (late, report.reason)
    # Rows acknowledged before the freeze and lost are asynchronous replication's tail: the
    # freeze stops the walsender a moment before the backend that commits (pkill goes
    # process by process), and a probe at 20 writes/s need not hit that window. They can
    # only be the last moment's.
    tail = [s for s, at in lost.items() if at <= frozen_at]
    assert all((frozen_at - lost[s]).total_seconds() < 3 for s in tail), (tail, frozen_at)


async def test_a_drill_cancelled_in_the_middle_of_its_fault_heals_the_cluster(
    lab_cluster: Lab,
) -> None:
    primary = await leader()
    inp = DrillInput(spec=lab_cluster.spec, scenario=Scenario.stop_patroni, settle_s=2,
                     hold_s=300)  # fmt: skip
    handle = await start_operation(lab_cluster.env.client, DRILL, lab_cluster.spec.cluster, inp,
                                   task_queue=lab_cluster.task_queue)  # fmt: skip

    async def patroni_stopped() -> bool:
        return (await docker_exec(primary, "systemctl", "is-active", "patroni"))[1] == "inactive"

    await eventually(patroni_stopped, within=60)
    await asyncio.sleep(5)  # well inside the fault's hold
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert (await docker_exec(primary, "systemctl", "is-active", "patroni"))[1] == "active"
    members = await patroni_members()
    assert all(m["State"] in ("running", "streaming") for m in members.values()), members
    assert len(members) == 3


async def test_a_dead_timeline_in_the_archive_is_set_aside_not_deleted(lab_cluster: Lab) -> None:
    """What healing does when fresh copies cannot start because the archive holds a newer
    timeline than the leader's (docs/drills.md): a forged one here, run through the real
    activity against the real repository."""
    spec = lab_cluster.spec
    repo = spec.hosts_with(Role.backup_repo)[0].name
    members = await patroni_members()
    current = max(int(str(m["TL"])) for m in members.values() if m.get("TL"))
    archive = f"{spec.backup.repo_path}/archive/{spec.stanza}"
    archive_id = await sh(repo, f"ls -1 {archive} | grep -E '^[0-9]+-[0-9]+$' | tail -1")
    forged = f"{archive}/{archive_id}/{current + 1:08X}.history"
    await sh(repo, f"printf '{current}\\t0/1000000\\tforged by a test\\n' > {forged}")
    try:
        result = await ActivityEnvironment().run(
            set_aside_dead_timelines, HostStep(spec=spec, host=repo)
        )
        assert result.changed and result.facts["timelines"] == str(current + 1)
        code, _ = await docker_exec(repo, "test", "-e", forged)
        assert code != 0  # gone from the archive
        kept = await sh(repo, f"ls {spec.backup.repo_path}/pgha-set-aside/*/{archive_id}/")
        assert f"{current + 1:08X}.history" in kept.split()  # kept aside, not deleted
        again = await ActivityEnvironment().run(
            set_aside_dead_timelines, HostStep(spec=spec, host=repo)
        )
        assert not again.changed  # the leader's own timelines are never touched
    finally:
        await sh(repo, f"rm -f {forged}; rm -rf {spec.backup.repo_path}/pgha-set-aside")


async def test_archiving_held_on_an_old_timelines_segment_is_released(lab_cluster: Lab) -> None:
    """The stall seen after many role changes (pgha/checks/stale_ready.py), forged: a
    segment of an older timeline, with other content than the archive's copy, waits as
    .ready on the primary. Run through the real activity against the real repository."""
    spec = lab_cluster.spec
    repo = spec.hosts_with(Role.backup_repo)[0].name
    primary = await leader()
    timeline = int(str((await patroni_members())[primary]["TL"]))
    archive = f"{spec.backup.repo_path}/archive/{spec.stanza}"
    archive_id = await sh(repo, f"ls -1 {archive} | grep -E '^[0-9]+-[0-9]+$' | tail -1")
    pg_wal = f"{spec.postgres.data_path}/pg_wal"
    local = set((await sh(primary, f"ls -1 {pg_wal}")).split())
    # The newest archived segment of an older timeline that the primary has no file of.
    # The drills above changed timelines; the switchover test alone is enough.
    listed = await sh(repo, f"cd {archive}/{archive_id} && ls -1 */ | grep -E '^[0-9A-F]{{24}}-'")
    older = sorted(
        n[:24] for n in listed.split() if int(n[:8], 16) < timeline and n[:24] not in local
    )
    assert older, f"no archived segment of a timeline older than {timeline}"
    segment = older[-1]
    in_repo = f"{archive}/{archive_id}/{segment[:16]}/{segment}-*"
    repo_copy = await sh(repo, f"sha1sum {in_repo}")
    psql = "runuser -u postgres -- psql -XAtc"
    # The archive's own copy with 8 kB changed past its header: a genuine segment of this
    # cluster (pgBackRest checks the header) whose checksum differs, as in the real stall.
    as_pg = "runuser -u postgres --"
    await sh(primary, f"{as_pg} pgbackrest --stanza={spec.stanza} archive-get {segment} "
                      f"{pg_wal}/{segment} && "
                      f"{as_pg} dd if=/dev/urandom of={pg_wal}/{segment} bs=8192 seek=128 "
                      "count=1 conv=notrunc status=none && "
                      f"{as_pg} touch {pg_wal}/archive_status/{segment}.ready && "
                      f"{psql} 'SELECT pg_catalog.pg_switch_wal()'")  # fmt: skip
    forged = await sh(primary, f"md5sum < {pg_wal}/{segment}")
    kept_in = ""
    try:

        async def archiver_stuck() -> bool:
            failed = await sh(primary, f"{psql} 'SELECT last_failed_wal FROM pg_stat_archiver'")
            return failed == segment

        await eventually(archiver_stuck, within=60)  # the stall is real
        step = HostStep(spec=spec, host=primary)
        result = await ActivityEnvironment().run(release_stale_ready, step)
        kept_in = result.facts["kept_in"]
        assert result.changed and result.facts["marked"] == segment, result.summary
        status = (await sh(primary, f"ls -1 {pg_wal}/archive_status")).split()
        assert f"{segment}.done" in status and f"{segment}.ready" not in status
        assert await sh(primary, f"md5sum < {kept_in}/{segment}") == forged  # kept aside
        assert await sh(repo, f"sha1sum {in_repo}") == repo_copy  # archive untouched
        # Archiving works again: pgbackrest check sees a new segment arrive.
        await ActivityEnvironment().run(check_archiving, HostStep(spec=spec, host=repo))
        again = await ActivityEnvironment().run(release_stale_ready, step)
        assert not again.changed, again.summary
    finally:
        # Unless marked archived, the forged file must go with its marker: PostgreSQL
        # would mark a segment with neither .ready nor .done for archiving again.
        ready = f"{pg_wal}/archive_status/{segment}.ready"
        cleanup = f"if [ -e {ready} ]; then rm -f {ready} {pg_wal}/{segment}; fi"
        await sh(primary, cleanup + (f"; rm -rf {kept_in}" if kept_in else ""))
