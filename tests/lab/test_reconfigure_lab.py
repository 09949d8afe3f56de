"""Reconfigure on the provisioned lab, checked past pgha: settings read with psql on each
member, postmaster start times for "restarted or not", patronictl for the leader, and a
writer of the test's own through the VIP whose acknowledged rows must all be there.

In order: the provisioned spec plans nothing; a dry run changes nothing; work_mem is
reloaded without a restart; max_connections raised restarts every member (replicas, then
the primary by switchover); put back (lowered), the primary goes first; then the spec
plans nothing again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pgha.operations import RECONFIGURE
from pgha.reconfigure_models import ReconfigureInput, ReconfigureReport
from pgha.spec import ClusterSpec, Role
from tests.lab.backup_helpers import Lab, sh
from tests.lab.drill_helpers import Writer, leader

pytestmark = pytest.mark.lab


def with_parameters(spec: ClusterSpec, **changes: Any) -> ClusterSpec:
    params = dict(spec.postgres.parameters) | changes
    return spec.model_copy(
        update={"postgres": spec.postgres.model_copy(update={"parameters": params})}
    )


def with_maxconn(spec: ClusterSpec, maxconn: int) -> ClusterSpec:
    return spec.model_copy(update={"haproxy": spec.haproxy.model_copy(update={"maxconn": maxconn})})


async def haproxy_pids(spec: ClusterSpec) -> dict[str, str]:
    """The HAProxy master's pid on each proxy: a reload keeps it, a restart does not."""
    return {p.name: await sh(p.name, "systemctl show -p MainPID --value haproxy")
            for p in spec.hosts_with(Role.haproxy)}  # fmt: skip


def members(spec: ClusterSpec) -> list[str]:
    return [h.name for h in spec.hosts_with(Role.postgres)]


async def show(host: str, name: str) -> str:
    return await sh(host, f'runuser -u postgres -- psql -XAtc "SHOW {name}"')


async def started(spec: ClusterSpec) -> dict[str, str]:
    q = 'runuser -u postgres -- psql -XAtc "SELECT pg_postmaster_start_time()"'
    return {h: await sh(h, q) for h in members(spec)}


async def reconfigure(lab: Lab, spec: ClusterSpec, dry_run: bool = False) -> ReconfigureReport:
    writer = Writer(spec)
    writing = asyncio.create_task(writer.go())
    try:
        result = await lab.run(RECONFIGURE, ReconfigureInput(spec=spec, dry_run=dry_run))
    finally:
        writer.stop.set()
        await writing
    assert set(writer.acked) <= await writer.present()  # the rows, not the report
    return ReconfigureReport.model_validate(result)


async def test_the_provisioned_spec_plans_nothing(lab_cluster: Lab) -> None:
    report = await reconfigure(lab_cluster, lab_cluster.spec, dry_run=True)
    assert report.plan.empty, report.plan


async def test_a_dry_run_shows_the_plan_and_changes_nothing(lab_cluster: Lab) -> None:
    spec = with_parameters(lab_cluster.spec, work_mem="8MB", max_connections=120)
    before = await started(spec)
    settings = {h: (await show(h, "work_mem"), await show(h, "max_connections"))
                for h in members(spec)}  # fmt: skip
    report = await reconfigure(lab_cluster, spec, dry_run=True)
    keys = {(c.scope, c.key, c.restart) for c in report.plan.changes}
    assert ("dcs", "postgresql.parameters.max_connections", True) in keys
    assert all((m, "postgresql.parameters.work_mem", False) in keys for m in members(spec))
    assert await started(spec) == before
    await asyncio.sleep(lab_cluster.spec.patroni.loop_wait + 2)  # a reload would show by now
    assert settings == {h: (await show(h, "work_mem"), await show(h, "max_connections"))
                        for h in members(spec)}  # fmt: skip


async def test_a_reload_only_change_restarts_nothing(lab_cluster: Lab) -> None:
    spec = with_maxconn(with_parameters(lab_cluster.spec, work_mem="8MB"), 3000)
    before, pids = await started(spec), await haproxy_pids(spec)
    report = await reconfigure(lab_cluster, spec)
    assert report.passed and report.restarted == [], report
    assert {f.service for f in report.plan.files} == {"patroni", "haproxy"}
    for h in members(spec):
        assert await show(h, "work_mem") == "8MB", h
    assert await started(spec) == before
    for p in pids:
        assert "maxconn 3000" in await sh(p, "cat /etc/haproxy/haproxy.cfg")
    assert await haproxy_pids(spec) == pids  # reloaded, not restarted


async def test_raising_max_connections_restarts_replicas_then_the_primary_by_switchover(
    lab_cluster: Lab,
) -> None:
    spec = with_maxconn(with_parameters(lab_cluster.spec, work_mem="8MB", max_connections=120),
                        3000)  # fmt: skip
    primary = await leader()
    before = await started(spec)
    report = await reconfigure(lab_cluster, spec)
    assert report.passed, report.reason
    assert report.restarted[-1] == primary and report.switchover.startswith(primary)
    assert sorted(report.restarted) == sorted(members(spec))
    after = await started(spec)
    for h in members(spec):
        assert await show(h, "max_connections") == "120", h
        assert after[h] != before[h], h  # really restarted
    assert await leader() != primary
    assert report.write_down_s is not None and 0 < report.write_down_s < 15


async def test_lowering_it_back_restarts_the_primary_first_then_plans_nothing(
    lab_cluster: Lab,
) -> None:
    spec = lab_cluster.spec
    primary = await leader()
    report = await reconfigure(lab_cluster, spec)
    assert report.passed, report.reason
    assert report.plan.lowered == ["max_connections"]
    assert report.restarted[0] == primary and not report.switchover
    for h in members(spec):
        assert await show(h, "max_connections") == "100", h
        assert await show(h, "work_mem") == "4MB", h  # PostgreSQL's default again
    again = await reconfigure(lab_cluster, spec, dry_run=True)
    assert again.plan.empty, again.plan
