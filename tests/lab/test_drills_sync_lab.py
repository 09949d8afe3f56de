"""Drills with synchronous_mode on: a commit is acknowledged only once the synchronous
standby has it, and only that standby may be promoted, so a killed postmaster or a primary
cut off from its peers loses no acknowledged commit. Checked on the rows of the test's own
writer, not on pgha's report.

Not freeze-primary: on the lab's Patroni 3.0.2 (no watchdog in containers) the resumed
old primary overwrote the leader key the synchronous standby had taken 10 s before, and
the writes the standby had acknowledged as the new primary were rewound away
(docs/drills.md). Synchronous replication does not help against two leaders; a watchdog
does.

The module switches Patroni's dynamic configuration of the shared lab to
synchronous_mode for its tests (`patronictl edit-config`, what `pgha run reconfigure`
will do) and puts it back afterwards, whatever happened.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from pgha.drill_models import Scenario
from pgha.operations import PROVISION
from pgha.provision_models import ProvisionInput
from pgha.spec import ClusterSpec
from pgha.worker import build_worker
from tests.lab.backup_helpers import Lab, sh
from tests.lab.drill_helpers import drill, leader, patroni_members, probe_rows
from tests.lab.helpers import eventually

pytestmark = pytest.mark.lab


async def set_synchronous_mode(on: bool) -> None:
    """Patroni's dynamic setting, changed in the DCS; waits until the members show it."""
    value = "true" if on else "false"
    await sh("db1", "patronictl -c /etc/patroni/config.yml edit-config --force "
                    f"-s synchronous_mode={value}")  # fmt: skip

    async def shown() -> bool:
        roles = [m["Role"] for m in (await patroni_members()).values()]
        return ("Sync Standby" in roles) == on

    await eventually(shown, within=60)


@pytest_asyncio.fixture(scope="module")
async def sync_cluster(env: WorkflowEnvironment, lab_spec: ClusterSpec) -> AsyncIterator[Lab]:
    patroni = lab_spec.patroni.model_copy(update={"synchronous_mode": True})
    spec = lab_spec.model_copy(update={"patroni": patroni})
    task_queue = f"drills-sync-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue):
        lab = Lab(env, lab_spec, task_queue)
        await lab.run(PROVISION, ProvisionInput(spec=lab_spec))
        await set_synchronous_mode(True)
        try:
            yield Lab(env, spec, task_queue)
        finally:
            await set_synchronous_mode(False)


async def no_acknowledged_commit_lost(lab: Lab, scenario: Scenario) -> None:
    before = await leader()
    report, writer = await drill(lab, scenario)
    assert report.patroni["synchronous_mode"] is True
    # The test's own rows: every insert whose commit returned is there.
    assert writer.acked, "the writer got nothing acknowledged"
    missing = set(writer.acked) - await writer.present()
    assert not missing, f"{len(missing)} acknowledged commits lost: {sorted(missing)[:10]}"
    # pgha's probe rows agree: none lost, and the report says so.
    assert report.verdict is not None and report.healed, report.reason
    assert not set(report.verdict.lost) and report.passed, report.reason
    assert len(await probe_rows(report)) >= report.verdict.acknowledged
    members = await patroni_members()
    assert all(m["State"] in ("running", "streaming") for m in members.values()), members
    if scenario is not Scenario.kill_postgres:
        assert await leader() != before


async def test_kill_postgres_loses_no_acknowledged_commit(sync_cluster: Lab) -> None:
    await no_acknowledged_commit_lost(sync_cluster, Scenario.kill_postgres)


async def test_partition_primary_loses_no_acknowledged_commit(sync_cluster: Lab) -> None:
    await no_acknowledged_commit_lost(sync_cluster, Scenario.partition_primary)
