"""etcd-add then etcd-remove on the provisioned lab with a spare host (db4, etcd only; a
container made for this test and removed after it), checked past pgha with etcdctl,
Patroni's config files and systemd; the spare is made etcd's leader before it is removed,
so the removal must move leadership away first. Patroni's leader and a writer of the
test's own must not notice any of it."""

from __future__ import annotations

import asyncio
import json

import pytest

from pgha.lab.spare import add_spare_host, remove_spare_host
from pgha.operations import ETCD_ADD, ETCD_REMOVE
from pgha.spec import Role
from pgha.topology_models import EtcdMemberInput, EtcdMemberReport
from tests.lab.backup_helpers import Lab, sh
from tests.lab.drill_helpers import Writer, leader
from tests.lab.helpers import docker_exec

pytestmark = pytest.mark.lab

SPARE = "db4"


def etcdctl(*endpoints: str) -> str:
    """etcdctl against the given host:port endpoints (db1's when none)."""
    urls = ",".join(f"http://{e}" for e in endpoints) or "http://127.0.0.1:2379"
    return f"ETCDCTL_API=3 etcdctl --endpoints={urls}"


async def members() -> dict[str, int]:
    out = json.loads(await sh("db1", f"{etcdctl()} member list -w json"))
    return {str(m.get("name", "")): int(m["ID"]) for m in out["members"]}


async def etcd_leader() -> int:
    out = json.loads(await sh("db1", f"{etcdctl()} endpoint status -w json"))
    return int(out[0]["Status"]["leader"])


async def test_etcd_add_then_remove_while_it_leads(lab_cluster: Lab) -> None:
    spec = await add_spare_host(lab_cluster.spec, SPARE, roles=[Role.etcd])
    primary = await leader()
    writer = Writer(spec)
    writing = asyncio.create_task(writer.go())
    url = f"{spec.host(SPARE).address}:{spec.etcd.client_port}"
    try:
        added = EtcdMemberReport.model_validate(
            await lab_cluster.run(ETCD_ADD, EtcdMemberInput(spec=spec, host=SPARE))
        )
        assert SPARE in added.members and set(await members()) == {"db1", "db2", "db3", SPARE}
        health = await sh("db1", f"{etcdctl('127.0.0.1:2379', url)} endpoint health 2>&1")
        assert health.count("is healthy") == 2, health
        for h in ("db1", "db2", "db3"):
            assert url in await sh(h, "cat /etc/patroni/config.yml"), h
        # Make the spare etcd's leader: removing it must move leadership away first.
        ids = await members()
        current = await etcd_leader()
        where = next(n for n, i in ids.items() if i == current)
        at = f"{spec.host(where).address}:{spec.etcd.client_port}"
        await sh("db1", f"{etcdctl(at)} move-leader {ids[SPARE]:x}")
        assert await etcd_leader() == ids[SPARE]

        removed = EtcdMemberReport.model_validate(
            await lab_cluster.run(ETCD_REMOVE, EtcdMemberInput(spec=spec, host=SPARE))
        )
        assert SPARE not in removed.members and removed.leader != SPARE
        assert set(await members()) == {"db1", "db2", "db3"}
        for h in ("db1", "db2", "db3"):
            assert url not in await sh(h, "cat /etc/patroni/config.yml"), h
        _, active = await docker_exec(SPARE, "systemctl", "is-active", "etcd")
        assert active.strip() != "active"
        _, aside = await docker_exec(SPARE, "sh", "-c", "ls -d /var/lib/etcd/*.removed-*")
        assert ".removed-" in aside  # its data set aside, not deleted
        assert await leader() == primary  # Patroni never noticed
    finally:
        writer.stop.set()
        await writing
        await remove_spare_host(SPARE)
    assert set(writer.acked) <= await writer.present()
