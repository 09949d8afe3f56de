"""Restore verification on a verify host of its own (the lab's verify1, a 7th host):
provision gives it PostgreSQL and pgBackRest and lets its postgres user reach the
repository over SSH; the restore and the WAL it replays come from backup1 over that link.

Runs last (file order) and puts the 6-host lab back when it ends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from pgha.lab.hosts import lab_up
from pgha.lab.layout import DEFAULT_HOSTS
from pgha.operations import PROVISION
from pgha.provision_models import ProvisionInput
from pgha.spec import Role, load_spec
from pgha.worker import build_worker
from tests.lab.backup_helpers import Lab, sh
from tests.lab.helpers import docker_exec

pytestmark = pytest.mark.lab
CLUSTERS = Path(__file__).parents[2] / "clusters"


@pytest_asyncio.fixture(scope="module")
async def seven(env: WorkflowEnvironment) -> AsyncIterator[Lab]:
    up = await lab_up(7, CLUSTERS)
    try:
        spec = load_spec(up.spec_path)
        task_queue = f"verify-host-{uuid.uuid4()}"
        async with build_worker(env.client, task_queue):
            lab = Lab(env, spec, task_queue)
            await lab.run(PROVISION, ProvisionInput(spec=spec))
            yield lab
    finally:
        await lab_up(DEFAULT_HOSTS, CLUSTERS)


async def test_verify_restore_on_a_host_of_its_own(seven: Lab) -> None:
    spec = seven.spec
    verify = spec.verify_host()
    assert verify is not None and verify.name == "verify1"
    assert Role.backup_repo not in verify.roles
    # The repository accepts verify1's postgres key, and only from verify1's address.
    keys = await sh(seven.repo, "cat ~postgres/.ssh/authorized_keys")
    assert f'from="{verify.address}"' in keys
    report = await seven.verify()
    assert report.passed, report.reason
    assert report.target_host == "verify1"
    (restore,) = [c for c in report.checks if c.name == "restore and recovery"]
    assert restore.passed and report.sizes["wal_replayed_bytes"] > 0
    # Nothing left behind on verify1, and nothing of the copy on the repository host.
    assert (await docker_exec("verify1", "test", "-e", report.scratch_path))[0] == 1
    assert (await docker_exec(seven.repo, "test", "-e", report.scratch_path))[0] == 1
