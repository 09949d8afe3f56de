"""Rolling minor upgrades on the provisioned lab, checked past pgha: versions, packages and
postmaster start times read with docker exec, and a writer of the test's own through the
VIP whose acknowledged rows must all be there.

One module, in order: down to 15.18 (bookworm) first, then up to 15.20 (bookworm-security)
with the replicas made to fail after their restart: the upgrade stops at the first one and
touches nothing else; fixed, it resumes and finishes.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from temporalio.client import WorkflowHandle

from pgha.operations import UPGRADE, start_operation
from pgha.rolling_models import Blocked, Decision, DecisionAction, UpgradeInput, UpgradeReport
from pgha.spec import ClusterSpec, Role
from tests.lab.backup_helpers import Lab, sh
from tests.lab.drill_helpers import Writer, leader
from tests.lab.helpers import eventually

pytestmark = pytest.mark.lab

SERVER, CLIENT = "postgresql-15", "postgresql-client-15"
#: Makes PostgreSQL refuse to start (a library that does not exist); Patroni does not
#: manage postgresql.auto.conf, so it survives the restart the upgrade does.
BREAK = "shared_preload_libraries = 'pgha_test_missing'"


def members(spec: ClusterSpec) -> list[str]:
    return [h.name for h in spec.hosts_with(Role.postgres)]


async def running(host: str) -> str:
    out = await sh(host, 'runuser -u postgres -- psql -XAtc "SHOW server_version"')
    return out.split()[0]


async def started_at(host: str) -> str:
    return await sh(host, 'runuser -u postgres -- psql -XAtc "SELECT pg_postmaster_start_time()"')


async def tags(spec: ClusterSpec, host: str) -> dict[str, object]:
    """The member's tags as its Patroni REST API shows them."""
    url = f"http://{spec.host(host).address}:{spec.patroni.restapi_port}/patroni"
    code = f'import json, urllib.request as u; print(json.dumps(json.load(u.urlopen("{url}")).get("tags", {{}})))'  # noqa: E501
    out = await sh(host, f"python3 -c '{code}'")
    return dict(json.loads(out))


async def installed(host: str) -> str:
    return await sh(host, f"dpkg-query -W -f '${{Version}}' {SERVER}")


async def upgrade(lab: Lab, version: str, **kw: object) -> WorkflowHandle[object, object]:
    inp = UpgradeInput(spec=lab.spec, packages={SERVER: version, CLIENT: version},
                       member_timeout_s=60, **kw)  # type: ignore[arg-type]  # fmt: skip
    return await start_operation(lab.env.client, UPGRADE, lab.spec.cluster, inp,
                                 task_queue=lab.task_queue)  # fmt: skip


async def test_down_to_15_18_one_member_at_a_time(lab_cluster: Lab) -> None:
    handle = await upgrade(lab_cluster, "15.18", allow_downgrade=True)
    report = UpgradeReport.model_validate(await handle.result())
    assert report.passed, report.reason
    for host in members(lab_cluster.spec):
        assert await running(host) == "15.18"
        assert (await installed(host)).startswith("15.18-")


async def test_up_to_15_20_stops_at_a_broken_replica_then_resumes(lab_cluster: Lab) -> None:
    spec = lab_cluster.spec
    primary = await leader()
    replicas = [h for h in members(spec) if h != primary]
    conf = f"{spec.postgres.data_path}/postgresql.auto.conf"
    for r in replicas:
        await sh(r, f'echo "{BREAK}" >> {conf}')
    before = {h: await started_at(h) for h in members(spec)}
    writer = Writer(spec)
    writing = asyncio.create_task(writer.go())
    try:
        handle = await upgrade(lab_cluster, "15.20")

        async def blocked() -> Blocked | None:
            return await handle.query("blocked", result_type=Blocked | None)  # type: ignore[arg-type,no-any-return]

        async def is_blocked() -> bool:
            return await blocked() is not None

        await eventually(is_blocked, within=400)
        stop = await blocked()
        assert stop is not None and stop.member in replicas, stop
        # The reason quotes PostgreSQL's own FATAL line, not just "see the logs".
        assert "pgha_test_missing" in stop.reason, stop.reason
        other = next(r for r in replicas if r != stop.member)
        # Nothing else was touched: same postmaster, same package, still 15.18.
        for host in (other, primary):
            assert await started_at(host) == before[host]
            assert (await installed(host)).startswith("15.18-")
            assert await running(host) == "15.18"
        assert (await installed(stop.member)).startswith("15.20-")
        assert await tags(spec, stop.member) == {"nofailover": True, "noloadbalance": True}
        assert await leader() == primary
        # The operator fixes both replicas and resumes.
        for r in replicas:
            await sh(r, f'sed -i "/pgha_test_missing/d" {conf}')
        await handle.execute_update("decide", Decision(action=DecisionAction.resume, by="test"),
                                    result_type=str)  # fmt: skip
        report = UpgradeReport.model_validate(await handle.result())
    finally:
        writer.stop.set()
        await writing
    assert report.passed, report.reason
    for host in members(spec):
        assert await running(host) == "15.20", host
        assert (await installed(host)).startswith("15.20-"), host
    assert await leader() != primary  # one switchover, to an upgraded replica
    assert set(writer.acked) <= await writer.present()  # the rows, not the report
    assert report.verdict is not None and report.verdict.safe
    assert report.cost is not None and 0 < report.cost.write_down_s < 15, report.cost
    for host in members(spec):
        assert await tags(spec, host) == {}, host  # all back in service
    assert [d.action for d in report.decisions] == [DecisionAction.resume]
