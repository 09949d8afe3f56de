"""Provision's runbook order and decisions, on a real dev server with fake activities."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pgha.operations import PROVISION, start_operation
from pgha.progress import Progress
from pgha.provision_models import ProvisionInput, ProvisionResult
from pgha.spec import ClusterSpec
from pgha.workflows.provision import Provision
from tests.workflows.provision_fakes import Recorder


async def provision(
    env: WorkflowEnvironment, spec: ClusterSpec, rec: Recorder
) -> tuple[ProvisionResult, Progress]:
    task_queue = f"prov-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=task_queue, workflows=[Provision],
                      activities=rec.activities()):  # fmt: skip
        handle = await start_operation(
            env.client, PROVISION, spec.cluster, ProvisionInput(spec=spec), task_queue=task_queue
        )
        try:
            result = ProvisionResult.model_validate(await handle.result())
        finally:
            progress = await handle.query("progress", result_type=Progress)
    return result, progress


async def test_provision_follows_runbook_order(env: WorkflowEnvironment, spec: ClusterSpec) -> None:
    rec = Recorder()
    result, progress = await provision(env, spec, rec)
    last_preflight = max(rec.order("preflight.check_host"))
    assert min(rec.order("packages.ensure_host")) > last_preflight
    assert min(rec.order("etcd.ensure_member")) > max(rec.order("packages.ensure_host"))
    assert min(rec.order("etcd.ensure_member")) > max(rec.order("etcd.read_state"))
    # Patroni: one member first, wait for it to lead, only then the replicas.
    first_start = rec.order("patroni.start_member", "db1")[0]
    leader_wait = rec.order("patroni.wait_leader")[0]
    assert first_start < leader_wait < min(rec.order("patroni.start_member", "db2"))
    assert min(rec.order("patroni.start_member", "db3")) > leader_wait
    assert min(rec.order("haproxy.ensure_config")) > max(rec.order("patroni.wait_replicas"))
    assert rec.order("pgbackrest.ensure_stanza")[0] > max(rec.order("pgbackrest.ensure_config"))
    # pgBackRest: certificates, then the repository's config and TLS server, then the
    # database hosts that connect to it.
    (tls,) = rec.order("pgbackrest.ensure_tls", "backup1")
    repo_config = rec.order("pgbackrest.ensure_config", "backup1")[0]
    assert max(rec.order("pgbackrest.ensure_trust")) < tls < repo_config
    assert repo_config < min(rec.order("pgbackrest.ensure_config", f"db{i}")[0] for i in (1, 2, 3))
    assert rec.order("cluster.verify_end_to_end")[0] == len(rec.calls) - 1
    assert rec.order("pgbouncer.ensure_config") == []  # disabled in the spec
    assert result.read_write == "postgresql://10.0.0.100:5000/postgres"
    assert result.leader == "db1"
    assert progress.done and "ready" in progress.outcome


async def test_provision_starts_the_guardian_last_when_the_spec_enables_it(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    rec = Recorder()
    await provision(env, spec, rec)
    assert rec.order("guardian.ensure_running") == []  # off by default
    guarded = spec.model_copy(update={"guardian": spec.guardian.model_copy(
        update={"enabled": True})})  # fmt: skip
    rec = Recorder()
    await provision(env, guarded, rec)
    assert rec.order("guardian.ensure_running") == [len(rec.calls) - 1]
    assert rec.order("cluster.verify_end_to_end")[0] == len(rec.calls) - 2


async def test_provision_new_cluster_gets_fresh_etcd_token_everywhere(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    rec = Recorder()
    await provision(env, spec, rec)
    tokens = {c[2]["token"] for c in rec.calls if c[0] == "etcd.ensure_member"}
    (token,) = tokens
    assert token.startswith(f"pgha-{spec.cluster}-")


async def test_provision_rerun_keeps_existing_etcd_token(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    rec = Recorder(facts={"etcd.read_state": lambda s: {"token": "pgha-old-token"}},
                   changed=False)  # fmt: skip
    result, _ = await provision(env, spec, rec)
    assert {c[2]["token"] for c in rec.calls if c[0] == "etcd.ensure_member"} == {"pgha-old-token"}
    assert result.changed == 0


async def test_provision_refuses_split_etcd(env: WorkflowEnvironment, spec: ClusterSpec) -> None:
    rec = Recorder(facts={"etcd.read_state": lambda s: {"token": f"t-{s.host}"}})
    with pytest.raises(WorkflowFailureError) as caught:
        await provision(env, spec, rec)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "EtcdSplit"
    assert rec.order("etcd.ensure_member") == []  # nothing bootstrapped


async def test_provision_vip_on_two_proxies_fails_clearly(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    rec = Recorder(facts={"keepalived.check_vip": lambda s: {"holds_vip": True}})
    with pytest.raises(WorkflowFailureError) as caught:
        await provision(env, spec, rec)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "VipNotHeld"
    assert "held by 2 proxies (proxy1, proxy2)" in cause.message
    assert rec.order("pgbackrest.ensure_keypair") == []  # stopped before the next phase
