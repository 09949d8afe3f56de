"""Failover drills on the provisioned lab, checked past pgha: the fault is seen with
patronictl and the postmaster's pid, and a writer of the test's own (not pgha's probe)
inserts through the VIP during the drill; its acknowledged rows must all be there."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from pgha.activities.cluster_secrets import resolve_one
from pgha.drill_models import DrillInput, DrillReport, Scenario
from pgha.operations import DRILL, PROVISION, start_operation
from pgha.provision_models import ProvisionInput
from pgha.render.postgres import connection_strings
from pgha.spec import ClusterSpec
from pgha.worker import build_worker
from tests.lab.backup_helpers import Lab, sh
from tests.lab.helpers import docker_exec, eventually

pytestmark = pytest.mark.lab


@pytest_asyncio.fixture(scope="module")
async def lab_cluster(env: WorkflowEnvironment, lab_spec: ClusterSpec) -> AsyncIterator[Lab]:
    task_queue = f"drills-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue):
        lab = Lab(env, lab_spec, task_queue)
        await lab.run(PROVISION, ProvisionInput(spec=lab_spec))
        yield lab


class Writer:
    """The test's own application: numbered inserts through the read-write endpoint."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.url = connection_strings(spec).read_write
        self.password = resolve_one(spec, "superuser").get_secret_value()
        self.run = f"test-{uuid.uuid4().hex[:8]}"
        self.acked: list[int] = []
        self.stop = asyncio.Event()

    async def connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        return await psycopg.AsyncConnection.connect(
            self.url, user="postgres", password=self.password, autocommit=True, connect_timeout=2
        )

    async def go(self) -> None:
        async with await self.connect() as c:
            await c.execute("CREATE TABLE IF NOT EXISTS public.test_writer (run text, seq int)")
        conn, seq = None, 0
        while not self.stop.is_set():
            seq += 1
            try:
                conn = conn or await self.connect()
                insert = conn.execute("INSERT INTO public.test_writer VALUES (%s, %s)",
                                      (self.run, seq))  # fmt: skip
                await asyncio.wait_for(insert, 3)
                self.acked.append(seq)
            except (psycopg.Error, OSError, TimeoutError):
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                conn = None
            await asyncio.sleep(0.05)

    async def present(self) -> set[int]:
        async with await self.connect() as c:
            cur = await c.execute("SELECT seq FROM public.test_writer WHERE run = %s", (self.run,))
            return {int(r[0]) for r in await cur.fetchall()}  # type: ignore[call-overload]


async def patroni_members(host: str = "db1") -> dict[str, dict[str, object]]:
    out = await sh(host, "patronictl -c /etc/patroni/config.yml list -f json")
    return {m["Member"]: m for m in json.loads(out)}


async def leader() -> str:
    return next(n for n, m in (await patroni_members()).items() if m["Role"] == "Leader")


class Observer:
    """What a command printed on some hosts, every few tenths of a second, while the drill
    ran: the fault seen from outside pgha."""

    def __init__(self, hosts: list[str], command: str) -> None:
        self.hosts, self.command = hosts, command
        self.seen: dict[str, set[str]] = {h: set() for h in hosts}
        self.stop = asyncio.Event()

    async def go(self) -> None:
        while not self.stop.is_set():
            for h in self.hosts:
                _, out = await docker_exec(h, "sh", "-c", self.command)
                self.seen[h].add(out.strip())
            await asyncio.sleep(0.2)


async def drill(
    lab: Lab, scenario: Scenario, observer: Observer | None = None
) -> tuple[DrillReport, Writer]:
    writer = Writer(lab.spec)
    tasks = [asyncio.create_task(writer.go())]
    if observer is not None:
        tasks.append(asyncio.create_task(observer.go()))
    try:
        await asyncio.sleep(1)
        inp = DrillInput(spec=lab.spec, scenario=scenario, settle_s=3, hold_s=3)
        try:
            result = await lab.run(DRILL, inp)
        except WorkflowFailureError as err:  # a drill that found lost writes fails red
            cause = err.cause
            assert isinstance(cause, ApplicationError) and cause.type == "DrillFailed", err
            result = cause.details[0]
    finally:
        writer.stop.set()
        if observer is not None:
            observer.stop.set()
        await asyncio.gather(*tasks)
    return DrillReport.model_validate(result), writer


async def probe_rows(report: DrillReport) -> set[int]:
    out = await sh(
        report.new_leader,
        'runuser -u postgres -- psql -XAtc "SELECT seq FROM pgha.drill_probe WHERE run = '
        f"'{report.probe_run}'\"",
    )
    return {int(x) for x in out.split()}


async def verdict_matches_rows(report: DrillReport) -> None:
    """With asynchronous replication a fault that cuts the primary off may lose commits it
    acknowledged but had not shipped yet: the drill must say so (red, naming them), and
    its verdict must match the probe's rows as read here."""
    v = report.verdict
    assert v is not None and report.healed
    rows = await probe_rows(report)
    assert not set(v.lost) & rows and len(rows) >= v.acknowledged - len(v.lost)
    assert report.passed == v.safe
    if not report.passed:
        assert f"{len(v.lost)} lost" in report.reason


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


async def container_states(
    names: list[str], seen: dict[str, set[str]], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        for n in names:
            proc = await asyncio.create_subprocess_exec(
                "docker", "inspect", "-f", "{{.State.Status}}", f"pgha-lab-{n}",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            out, _ = await proc.communicate()
            seen.setdefault(n, set()).add(out.decode().strip())
        await asyncio.sleep(0.5)


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


@pytest.mark.skip(
    reason="flaky on a reused lab (failed in 2 of 5 CI runs, cause not found yet; the "
    "drill after it then finds the cluster not whole): see docs/drills.md"
)
async def test_partition_cuts_the_primary_off_and_heals_it(lab_cluster: Lab) -> None:
    primary = await leader()
    observer = Observer([primary], "nft list table inet pgha_drill >/dev/null 2>&1 && echo cut")
    report, _ = await drill(lab_cluster, Scenario.partition_primary, observer)
    assert "cut" in observer.seen[primary]  # the rules were really there
    code, _ = await docker_exec(primary, "nft", "list", "table", "inet", "pgha_drill")
    assert code != 0  # and are gone
    assert await leader() != primary
    await verdict_matches_rows(report)


@pytest.mark.skip(
    reason="freeze-primary can leave the lab split (see docs/drills.md): the resumed old "
    "primary re-took the leader key once and the promoted replica failed to start; healing "
    "does not reinitialise members yet, so this test is off until it does"
)
async def test_frozen_primary_is_replaced_and_the_writes_judged(lab_cluster: Lab) -> None:
    primary = await leader()
    # ps state T: stopped by a signal; the oldest postgres process is Patroni or postgres.
    observer = Observer([primary], "ps -o stat= -u postgres | grep -c '^T' || true")
    report, _ = await drill(lab_cluster, Scenario.freeze_primary, observer)
    assert any(n not in ("", "0") for n in observer.seen[primary])  # really frozen
    _, stopped = await docker_exec(
        primary, "sh", "-c", "ps -o stat= -u postgres | grep -c '^T' || true"
    )
    assert stopped == "0"  # and resumed
    assert await leader() != primary
    # No watchdog in the lab: the resumed old primary may also take writes before Patroni
    # demotes it, which vanish with its rewind.
    await verdict_matches_rows(report)


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
