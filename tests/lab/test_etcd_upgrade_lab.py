"""EtcdUpgrade on the provisioned lab, end to end through the workflow. Debian 12 has one
etcd version (3.4.23), so the test asks for it with a rolling restart (`--restart-all`):
the same hand-off, install and restart a new package would get. Checked past pgha: each
member's etcd process is new (its pid), the etcd leader moved off before its own restart,
Patroni's leader and every postmaster are untouched, and a writer of the test's own lost
no acknowledged row."""

from __future__ import annotations

import asyncio
import json

import pytest

from pgha.operations import ETCD_UPGRADE
from pgha.rolling_models import EtcdUpgradeInput, EtcdUpgradeReport
from pgha.spec import Role
from tests.lab.backup_helpers import Lab, sh
from tests.lab.drill_helpers import Writer, leader

pytestmark = pytest.mark.lab

POSTMASTER_START = 'runuser -u postgres -- psql -XAtc "SELECT pg_postmaster_start_time()"'


async def etcd_pid(host: str) -> str:
    return await sh(host, "systemctl show -p MainPID --value etcd")


async def etcd_leader(host: str) -> str:
    """The etcd leader's name, asked with etcdctl (not through pgha)."""
    script = (
        "ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 endpoint status -w json "
        '| python3 -c \'import json,sys; print(json.load(sys.stdin)[0]["Status"]["leader"])\''
        "; ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 member list -w json"
    )
    out = (await sh(host, script)).split("\n", 1)
    members = json.loads(out[1])["members"]
    return next(m["name"] for m in members if str(m["ID"]) == out[0].strip())


async def test_rolling_restart_of_etcd_keeps_quorum_and_patroni_leader(lab_cluster: Lab) -> None:
    spec = lab_cluster.spec
    members = [h.name for h in spec.hosts_with(Role.etcd)]
    databases = [h.name for h in spec.hosts_with(Role.postgres)]
    pids = {h: await etcd_pid(h) for h in members}
    starts = {h: await sh(h, POSTMASTER_START) for h in databases}
    etcd_first, primary = await etcd_leader(members[0]), await leader()
    writer = Writer(spec)
    writing = asyncio.create_task(writer.go())
    try:
        inp = EtcdUpgradeInput(spec=spec, version="3.4.23", restart_all=True)
        report = EtcdUpgradeReport.model_validate(await lab_cluster.run(ETCD_UPGRADE, inp))
    finally:
        writer.stop.set()
        await writing
    # Followers first, the leader last; every member's etcd is a new process.
    assert report.restarted[-1] == etcd_first == report.leader_before
    assert sorted(report.restarted) == sorted(members)
    after = {h: await etcd_pid(h) for h in members}
    assert all(after[h] != pids[h] for h in members), (pids, after)
    assert await etcd_leader(members[0]) != etcd_first == report.leader_before
    # Patroni did not notice: same leader, no postmaster restarted, nothing lost.
    assert await leader() == primary == report.patroni_leader_after
    assert {h: await sh(h, POSTMASTER_START) for h in databases} == starts
    assert set(writer.acked) <= await writer.present()
    assert report.verdict is not None and not report.verdict.lost
    assert {v.running for v in report.versions_after.values()} == {"3.4.23"}

    # Without --restart-all, every member is on the version: nothing to do.
    again = EtcdUpgradeReport.model_validate(
        await lab_cluster.run(ETCD_UPGRADE, EtcdUpgradeInput(spec=spec, version="3.4.23"))
    )
    assert again.restarted == [] and {h: await etcd_pid(h) for h in members} == after
