"""The seed's bare-minimum layout: 2 PostgreSQL nodes and 3 etcd members (the third on a
witness host), no proxies; the application connects with a multi-host connection string."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from pgha.activities.cluster_secrets import resolve_one
from pgha.lab.hosts import lab_status, lab_up
from pgha.operations import PROVISION, start_operation
from pgha.provision_models import ProvisionInput, ProvisionResult
from pgha.spec import ClusterSpec, parse_spec
from pgha.worker import build_worker
from tests.lab.helpers import write_then_read_on_standby

pytestmark = pytest.mark.lab
ROOT = Path(__file__).parents[2]
DB_HOSTS = ("db1", "db2", "db3")


async def recreate_db_hosts() -> None:
    containers = [h.container for h in await lab_status() if h.name in DB_HOSTS]
    await asyncio.to_thread(subprocess.run, ["docker", "rm", "-f", *containers], check=True,
                            capture_output=True)  # fmt: skip
    await lab_up(len(await lab_status()) + len(containers), ROOT / "clusters")


def bare_minimum(lab: ClusterSpec) -> ClusterSpec:
    data = lab.model_dump(mode="json")
    hosts = {h["name"]: h for h in data["hosts"]}
    hosts["db3"]["roles"] = ["etcd"]  # the witness
    data.update(
        cluster="mini",
        hosts=[hosts[n] for n in DB_HOSTS],
        vip=None,
        backup={"enabled": False, "schedule": {"verify_restore": None}},
        postgres=data["postgres"] | {"client_networks": ["10.77.0.0/24"]},
    )
    return parse_spec(data, "bare-minimum")


async def test_bare_minimum_layout_provisions_and_serves_multi_host_clients(
    env: WorkflowEnvironment, lab_spec: ClusterSpec
) -> None:
    await recreate_db_hosts()
    spec = bare_minimum(lab_spec)
    try:
        task_queue = f"mini-{uuid.uuid4()}"
        async with build_worker(env.client, task_queue):
            handle = await start_operation(
                env.client, PROVISION, spec.cluster, ProvisionInput(spec=spec),
                task_queue=task_queue,
            )  # fmt: skip
            result = ProvisionResult.model_validate(await handle.result())
        assert result.read_write == (
            "postgresql://10.77.0.11:5432,10.77.0.12:5432/postgres?target_session_attrs=read-write"
        )
        password = resolve_one(spec, "superuser").get_secret_value()
        await write_then_read_on_standby(result.read_write, result.read_only, password)
    finally:
        await recreate_db_hosts()  # give the next tests the lab's own (bare) db hosts
