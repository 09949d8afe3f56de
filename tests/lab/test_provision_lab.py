"""Provision of the whole lab from bare hosts, checked from outside pgha; then the re-run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from pgha.activities.cluster_secrets import resolve_one
from pgha.lab.hosts import lab_status, lab_up
from pgha.operations import PROVISION, STATUS, start_operation
from pgha.provision_models import ProvisionInput, ProvisionResult
from pgha.secrets import store_path
from pgha.spec import ClusterSpec, load_spec, parse_spec
from pgha.status_models import ClusterStatus, StatusInput
from pgha.worker import build_worker
from tests.lab.helpers import write_then_read_on_standby

pytestmark = pytest.mark.lab
ROOT = Path(__file__).parents[2]


def sh(host: str, *cmd: str) -> str:
    return subprocess.run(
        ["docker", "exec", f"pgha-lab-{host}", *cmd], capture_output=True, text=True, check=True
    ).stdout


def postmaster_started(host: str) -> str:
    return sh(host, "runuser", "-u", "postgres", "--", "psql", "-XAtc",
              "SELECT pg_postmaster_start_time()").strip()  # fmt: skip


class Provisioned:
    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.runs: list[tuple[ProvisionResult, WorkflowHandle[object, object]]] = []


@pytest_asyncio.fixture(scope="module")
async def provisioned(env: WorkflowEnvironment) -> AsyncIterator[Provisioned]:
    """Bare lab hosts (recreated), provisioned once by a real worker."""
    names = [h.container for h in await lab_status()]
    if names:
        await asyncio.to_thread(subprocess.run, ["docker", "rm", "-f", *names], check=True,
                                capture_output=True)  # fmt: skip
    up = await lab_up(6, ROOT / "clusters")
    spec = load_spec(up.spec_path)
    state = Provisioned(spec)
    task_queue = f"provision-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue):
        handle = await start_operation(
            env.client, PROVISION, spec.cluster, ProvisionInput(spec=spec), task_queue=task_queue
        )
        state.runs.append((ProvisionResult.model_validate(await handle.result()), handle))
        yield state


async def test_provision_builds_cluster_seen_from_outside(provisioned: Provisioned) -> None:
    spec = provisioned.spec
    members = json.loads(sh("db1", "patronictl", "-c", "/etc/patroni/config.yml", "list",
                            "-f", "json"))  # fmt: skip
    roles = sorted(m["Role"] for m in members)
    assert roles == ["Leader", "Replica", "Replica"], members
    assert all(m["State"] in ("running", "streaming") for m in members), members
    etcd = sh("db1", "etcdctl", "member", "list")
    assert len(etcd.strip().splitlines()) == 3
    # An application's view: write through the VIP, read it back from a replica.
    assert spec.vip is not None
    vip, password = str(spec.vip.address.ip), resolve_one(spec, "superuser").get_secret_value()
    await write_then_read_on_standby(
        f"host={vip} port={spec.haproxy.rw_port} dbname=postgres",
        f"host={vip} port={spec.haproxy.ro_port} dbname=postgres",
        password,
    )
    result = provisioned.runs[0][0]
    assert result.read_write == f"postgresql://{vip}:{spec.haproxy.rw_port}/postgres"


async def test_provision_rerun_changes_and_restarts_nothing(
    env: WorkflowEnvironment, provisioned: Provisioned
) -> None:
    spec = provisioned.spec
    before = {h: postmaster_started(h) for h in ("db1", "db2", "db3")}
    task_queue = f"provision-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue):
        handle = await start_operation(
            env.client, PROVISION, spec.cluster, ProvisionInput(spec=spec), task_queue=task_queue
        )
        result = ProvisionResult.model_validate(await handle.result())
    provisioned.runs.append((result, handle))
    assert result.changed == 0, [w for w in result.warnings]
    assert {h: postmaster_started(h) for h in ("db1", "db2", "db3")} == before


async def test_provision_history_holds_no_secret(provisioned: Provisioned) -> None:
    store = json.loads(store_path().read_text())
    values = [v for k, v in store.items() if k.startswith(f"{provisioned.spec.cluster}-")]
    assert len(values) >= 4  # superuser, replication, rewind, REST API at least
    for _, handle in provisioned.runs:
        history = (await handle.fetch_history()).to_json()
        for value in values:
            assert value not in history
            assert value[:8] not in history  # the keepalived password is the first 8


async def test_status_reads_live_cluster_and_names_unreachable_parts(
    env: WorkflowEnvironment, provisioned: Provisioned
) -> None:
    spec = provisioned.spec
    # proxy2 reached on a closed port: status must say so, not guess.
    data = spec.model_dump(mode="json")
    for h in data["hosts"]:
        if h["name"] == "proxy2":
            h["ssh"] = {"port": 2}
    broken = parse_spec(data, "test")
    task_queue = f"status-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue):
        results = []
        for s in (spec, broken):
            handle = await start_operation(
                env.client, STATUS, s.cluster, StatusInput(spec=s), task_queue=task_queue
            )
            results.append(ClusterStatus.model_validate(await handle.result()))
    healthy, partial = results
    assert healthy.unreadable == []
    assert healthy.patroni is not None
    assert sorted(m.role for m in healthy.patroni.members) == ["leader", "replica", "replica"]
    assert healthy.etcd is not None and all(m.healthy for m in healthy.etcd.members)
    assert len(healthy.etcd.members) == 3 and healthy.etcd.leader
    assert [p.holds_vip for p in healthy.proxies].count(True) == 1
    up = {(b.listener, b.status) for p in healthy.proxies for b in p.backends}
    assert ("primary", "UP") in up and ("replicas", "UP") in up
    assert healthy.backups is not None and healthy.backups.backups
    assert [(u.part, u.host) for u in partial.unreadable] == [("proxy", "proxy2")]
    assert "port 2" in partial.unreadable[0].error
    assert [p.host for p in partial.proxies] == ["proxy1"]
