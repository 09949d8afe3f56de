"""Patroni restarted on every member in maintenance mode, on the provisioned lab, with the
activities PatroniUpgrade uses: no failover, PostgreSQL's postmaster untouched (start
times read with psql), and a writer of the test's own losing nothing. Debian 12 has one
patroni version, so this is the upgrade's restart without a new package."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import ActivityEnvironment

from pgha.activities.rolling import restart_patroni, set_pause
from pgha.spec import Role
from pgha.steps import HostStep
from tests.lab.backup_helpers import Lab, sh
from tests.lab.drill_helpers import Writer, leader

pytestmark = pytest.mark.lab


async def test_patroni_restarts_in_maintenance_mode_and_postgres_keeps_running(
    lab_cluster: Lab,
) -> None:
    spec = lab_cluster.spec
    members = [h.name for h in spec.hosts_with(Role.postgres)]
    q = 'runuser -u postgres -- psql -XAtc "SELECT pg_postmaster_start_time()"'
    before = {h: await sh(h, q) for h in members}
    primary = await leader()
    env = ActivityEnvironment()
    writer = Writer(spec)
    writing = asyncio.create_task(writer.go())
    try:
        paused = await env.run(set_pause, HostStep(spec=spec, host=primary,
                                                   params={"paused": "yes"}))  # fmt: skip
        assert paused.changed
        assert "Maintenance mode" in await sh(primary, "patronictl -c /etc/patroni/config.yml list")
        for h in [*[m for m in members if m != primary], primary]:
            r = await env.run(restart_patroni, HostStep(spec=spec, host=h))
            assert r.facts["postgres_restarted"] is False, (h, r.summary)
    finally:
        await env.run(set_pause, HostStep(spec=spec, host=primary, params={"paused": "no"}))
        writer.stop.set()
        await writing
    assert "Maintenance mode" not in await sh(primary, "patronictl -c /etc/patroni/config.yml list")
    assert await leader() == primary
    assert {h: await sh(h, q) for h in members} == before
    assert set(writer.acked) <= await writer.present()
