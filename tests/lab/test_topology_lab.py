"""add-node then remove-node on the provisioned lab, with a spare host (db4, a container
made for this test and removed after it), checked past pgha: patronictl, HAProxy's
config and stats, the leader's replication slots, systemd on db4, and a writer of the
test's own through the VIP whose acknowledged rows must all be there. Also a switchover
to a chosen member."""

from __future__ import annotations

import asyncio

import pytest

from pgha.lab.spare import add_spare_host, remove_spare_host
from pgha.operations import ADD_NODE, RECONFIGURE, REMOVE_NODE, SWITCHOVER
from pgha.reconfigure_models import ReconfigureInput, ReconfigureReport
from pgha.rolling_models import SwitchoverInput, SwitchoverReport
from pgha.spec import Role
from pgha.topology_models import NodeInput, NodeReport
from tests.lab.backup_helpers import Lab, sh
from tests.lab.drill_helpers import Writer, leader, patroni_members
from tests.lab.helpers import docker_exec

pytestmark = pytest.mark.lab

SPARE = "db4"


async def writing(lab: Lab, op: object, arg: object) -> tuple[object, Writer]:
    writer = Writer(lab.spec)
    task = asyncio.create_task(writer.go())
    try:
        result = await lab.run(op, arg)  # type: ignore[arg-type]
    finally:
        writer.stop.set()
        await task
    return result, writer


async def test_switchover_to_a_chosen_member(lab_cluster: Lab) -> None:
    before = await leader()
    target = next(n for n in ("db3", "db2", "db1") if n != before)
    result, writer = await writing(lab_cluster, SWITCHOVER,
                                   SwitchoverInput(spec=lab_cluster.spec, to=target))  # fmt: skip
    report = SwitchoverReport.model_validate(result)
    assert await leader() == target == report.new_leader and report.old_leader == before
    assert set(writer.acked) <= await writer.present()
    assert report.cost is not None and 0 < report.cost.write_down_s < 10


async def test_add_node_then_remove_node(lab_cluster: Lab) -> None:
    spec = await add_spare_host(lab_cluster.spec, SPARE)
    proxies = [h.name for h in spec.hosts_with(Role.haproxy)]
    try:
        result, writer = await writing(lab_cluster, ADD_NODE, NodeInput(spec=spec, host=SPARE))
        added = NodeReport.model_validate(result)
        assert SPARE in added.members
        members = await patroni_members()
        assert members[SPARE]["State"] in ("running", "streaming"), members
        assert members[SPARE]["TL"] == members[await leader()]["TL"]
        for p in proxies:
            assert f"server {SPARE} " in await sh(p, "cat /etc/haproxy/haproxy.cfg")
        assert set(writer.acked) <= await writer.present()

        result, writer = await writing(lab_cluster, REMOVE_NODE, NodeInput(spec=spec, host=SPARE))
        removed = NodeReport.model_validate(result)
        assert SPARE not in removed.members and removed.next_steps
        assert SPARE not in await patroni_members()
        for p in proxies:
            assert f"server {SPARE} " not in await sh(p, "cat /etc/haproxy/haproxy.cfg")
        slots = await sh(await leader(), 'runuser -u postgres -- psql -XAtc '
                         '"SELECT slot_name FROM pg_replication_slots"')  # fmt: skip
        assert SPARE not in slots.split()
        _, state = await docker_exec(SPARE, "systemctl", "is-enabled", "patroni")
        assert state.strip() == "disabled"
        code, _ = await docker_exec(SPARE, "test", "-f", f"{spec.postgres.data_path}/PG_VERSION")
        assert code == 0  # its data is kept
        assert set(writer.acked) <= await writer.present()
    finally:
        await remove_spare_host(SPARE)
    # The cluster is as the lab spec has it: reconfigure plans nothing.
    plan = await lab_cluster.run(RECONFIGURE, ReconfigureInput(spec=lab_cluster.spec,
                                                               dry_run=True))  # fmt: skip
    assert ReconfigureReport.model_validate(plan).plan.empty, plan
