"""A Patroni release from PyPI on the provisioned lab (``patroni.pypi_version``), checked
past pgha: PatroniUpgrade moves every member from Debian's 3.0.2 to 3.0.4 in maintenance
mode (the processes run from the venv, PostgreSQL's postmasters keep their start times, a
writer of the test's own loses nothing); with it, a frozen primary that resumes demotes
itself instead of taking the leader key back (patroni/patroni#2689, the freeze-primary
drill's finding on 3.0.2), so no write acknowledged after the freeze is lost; and the lab
goes back to the package the same way, whatever happened before."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from pgha.activities.patroni import ensure_release
from pgha.drill_models import Scenario
from pgha.operations import PATRONI_UPGRADE
from pgha.rolling_models import PatroniUpgradeInput, PatroniUpgradeReport
from pgha.spec import ClusterSpec, Role
from pgha.steps import HostStep
from tests.lab.backup_helpers import Lab, sh
from tests.lab.drill_helpers import Writer, drill, leader, patroni_members, verdict_matches_rows

pytestmark = pytest.mark.lab

RELEASE = "3.0.4"
VENV_PATRONI = f"/opt/pgha/patroni-{RELEASE}/bin/patroni"
RUNNING = "ps -o args= -u postgres | grep -o '[^ ]*/patroni ' | head -n 1"
STARTED = 'runuser -u postgres -- psql -XAtc "SELECT pg_postmaster_start_time()"'


def with_release(spec: ClusterSpec, version: str | None) -> ClusterSpec:
    patroni = spec.patroni.model_copy(update={"pypi_version": version})
    return spec.model_copy(update={"patroni": patroni})


async def upgrade(lab: Lab, spec: ClusterSpec, version: str) -> PatroniUpgradeReport:
    inp = PatroniUpgradeInput(spec=spec, version=version)
    return PatroniUpgradeReport.model_validate(await lab.run(PATRONI_UPGRADE, inp))


async def back_to_the_package(lab: Lab) -> None:
    """What an operator does to leave a release: drop patroni.pypi_version (provision or
    this activity removes the drop-in and links), then the upgrade restarts the members
    that still run the release."""
    env = ActivityEnvironment()
    members = [h.name for h in lab.spec.hosts_with(Role.postgres)]
    for h in members:
        await env.run(ensure_release, HostStep(spec=lab.spec, host=h))
    package = await sh(members[0], "dpkg-query -W -f '${Version}' patroni")
    await upgrade(lab, lab.spec, package)


async def test_a_pypi_release_replaces_debians_patroni_and_a_frozen_primary_demotes(
    lab_cluster: Lab,
) -> None:
    members = [h.name for h in lab_cluster.spec.hosts_with(Role.postgres)]
    released = Lab(lab_cluster.env, with_release(lab_cluster.spec, RELEASE),
                   lab_cluster.task_queue)  # fmt: skip
    await back_to_the_package(lab_cluster)  # whatever an earlier run left: nothing, usually
    try:
        started = {h: await sh(h, STARTED) for h in members}
        primary = await leader()
        writer = Writer(lab_cluster.spec)
        writing = asyncio.create_task(writer.go())
        try:
            report = await upgrade(released, released.spec, RELEASE)
        finally:
            writer.stop.set()
            await writing
        assert report.versions_after == {h: RELEASE for h in members}
        assert sorted(report.restarted) == sorted(members) and report.postgres_restarted == []
        for h in members:
            assert (await sh(h, RUNNING)).strip() == VENV_PATRONI, h
            assert await sh(h, "patronictl version") == f"patronictl version {RELEASE}"
        assert {h: await sh(h, STARTED) for h in members} == started
        assert await leader() == primary
        assert set(writer.acked) <= await writer.present()

        # The drill that lost writes on 3.0.2, now on the release.
        report_f, writer_f = await drill(released, Scenario.freeze_primary)
        assert report_f.new_leader != primary and report_f.patroni_times is not None
        since = int(report_f.patroni_times.fault_at.timestamp())
        journal = await sh(primary, f"journalctl -u patroni --no-pager -o cat --since @{since}")
        # Resumed, it found the key taken and stepped down (3.0.2 could write it back).
        # Patroni says why in one of two ways, depending on where its loop was frozen
        # ("... I do not have the lock and I was a leader", or "failed to update leader
        # lock"); both go through demote(), which logs this line.
        assert "Demoting self (immediate-nolock)" in journal, journal[-3000:]
        members_now = await patroni_members()
        assert all(m["State"] in ("running", "streaming") for m in members_now.values())
        assert len({m.get("TL") for m in members_now.values()}) == 1, members_now
        await verdict_matches_rows(report_f)
        frozen_at = report_f.patroni_times.fault_at + timedelta(seconds=2)
        present = await writer_f.present()
        late = sorted(s for s, at in writer_f.acked.items() if s not in present and at > frozen_at)
        assert late == [], f"rows acknowledged after the freeze lost: {late}"
        assert report_f.passed, report_f.reason
    finally:
        await back_to_the_package(lab_cluster)
    for h in members:
        assert (await sh(h, RUNNING)).strip() == "/usr/bin/patroni", h
        assert await sh(h, "test -e /etc/systemd/system/patroni.service.d/pgha-release.conf "
                           "&& echo present || echo absent") == "absent"  # fmt: skip
