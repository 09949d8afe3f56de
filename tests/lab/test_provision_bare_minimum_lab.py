"""The seed's bare-minimum layout: 2 PostgreSQL nodes and 3 etcd members (the third on a
witness host), no proxies; the application connects with a multi-host connection string."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from temporalio.testing import WorkflowEnvironment

from pgha.activities.cluster_secrets import resolve_one
from pgha.lab.hosts import lab_status, lab_up
from pgha.operations import PROVISION, start_operation
from pgha.provision_models import ProvisionInput, ProvisionResult
from pgha.spec import ClusterSpec, parse_spec
from pgha.worker import build_worker

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
        token = uuid.uuid4().hex
        with psycopg.connect(result.read_write, user="postgres", password=password,
                             autocommit=True) as c:  # fmt: skip
            c.execute("CREATE TABLE IF NOT EXISTS public.mini_check (t text)")
            c.execute("INSERT INTO public.mini_check VALUES (%s)", (token,))
        row = None
        for _ in range(50):
            with psycopg.connect(result.read_only, user="postgres", password=password) as c:
                row = c.execute(
                    "SELECT pg_is_in_recovery(), count(*) FROM public.mini_check WHERE t = %s",
                    (token,),
                ).fetchone()
            if row == (True, 1):
                break
            await asyncio.sleep(0.2)
        assert row == (True, 1)
    finally:
        await recreate_db_hosts()  # give the next tests the lab's own (bare) db hosts
