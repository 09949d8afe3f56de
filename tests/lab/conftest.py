"""Fixtures for lab tests: one lab for the whole session, reused when it is already up."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from pgha.hosts.host import close_all
from pgha.lab.hosts import LabUpResult, lab_status, lab_up
from pgha.lab.layout import MIN_HOSTS
from pgha.operations import PROVISION, lock_id
from pgha.provision_models import ProvisionInput
from pgha.spec import ClusterSpec, load_spec
from pgha.worker import build_worker
from tests.lab.backup_helpers import Lab

CLUSTERS_DIR = Path(__file__).resolve().parents[2] / "clusters"


@pytest.fixture(scope="session")
async def lab() -> AsyncIterator[LabUpResult]:
    """The running lab (brought up if needed). Keeps the current host count, so a lab that
    someone else brought up with --hosts 7 is not shrunk, and leaves the lab up afterwards:
    lab_up is idempotent and other tests and engineers share it."""
    current = await lab_status()
    result = await lab_up(len(current) if len(current) >= MIN_HOSTS else 6, CLUSTERS_DIR)
    yield result
    await close_all()


@pytest.fixture(scope="session")
def lab_spec(lab: LabUpResult) -> ClusterSpec:
    """clusters/lab.yaml exactly as pgha reads it."""
    return load_spec(lab.spec_path)


@pytest_asyncio.fixture(scope="module", autouse=True)
async def lab_lock_free(env: WorkflowEnvironment, lab_spec: ClusterSpec) -> None:
    """Before each lab module: end an operation an earlier module left running on the lab
    cluster. A test that times out (pytest-timeout) stops waiting but not its workflow,
    which would otherwise hold the cluster's lock and fail every module after it with
    ClusterBusy instead of that module's own result."""
    handle = env.client.get_workflow_handle(lock_id(lab_spec.cluster))
    try:
        desc = await handle.describe()
    except RPCError:  # never started in this session
        return
    if desc.status == WorkflowExecutionStatus.RUNNING:
        await handle.terminate(reason="left running by an earlier lab test module")


@pytest_asyncio.fixture(scope="module")
async def lab_cluster(env: WorkflowEnvironment, lab_spec: ClusterSpec) -> AsyncIterator[Lab]:
    """The lab cluster, provisioned (a re-run when it already is: seconds) by a real worker
    that stays up for the module; modules that need another set-up define their own."""
    task_queue = f"lab-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue):
        lab = Lab(env, lab_spec, task_queue)
        await lab.run(PROVISION, ProvisionInput(spec=lab_spec))
        yield lab
