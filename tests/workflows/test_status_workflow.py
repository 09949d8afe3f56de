"""pgha status reads every part at once and lists what did not answer, never guessing."""

from __future__ import annotations

import uuid

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pgha.operations import STATUS, start_operation
from pgha.spec import ClusterSpec
from pgha.status_models import (
    BackupStatus,
    ClusterStatus,
    EtcdMember,
    EtcdStatus,
    Member,
    PatroniStatus,
    ProxyStatus,
    StatusInput,
)
from pgha.steps import HostStep
from pgha.workflows.status import ClusterStatusWorkflow


@activity.defn(name="status.patroni")
async def patroni(step: HostStep) -> PatroniStatus:
    if step.host == "db1":  # the first member is down: the next one answers
        raise ApplicationError("host db1 (10.0.0.11): cannot connect", type="HostUnreachable",
                               non_retryable=True)  # fmt: skip
    return PatroniStatus(
        members=[Member(name="db2", host="10.0.0.12", role="leader", state="running")],
        source=step.host,
    )


@activity.defn(name="status.etcd")
async def etcd(step: HostStep) -> EtcdStatus:
    return EtcdStatus(members=[EtcdMember(endpoint="http://10.0.0.11:2379", healthy=True,
                                          leader=True)])  # fmt: skip


@activity.defn(name="status.proxy")
async def proxy(step: HostStep) -> ProxyStatus:
    if step.host == "proxy2":
        raise ApplicationError("host proxy2: timed out", type="HostUnreachable",
                               non_retryable=True)  # fmt: skip
    return ProxyStatus(host=step.host, holds_vip=True, haproxy="active",
                       keepalived="active", backends=[])  # fmt: skip


@activity.defn(name="status.backups")
async def backups(step: HostStep) -> BackupStatus:
    return BackupStatus(stanza=step.spec.stanza, status="ok", backups=[])


async def test_status_reports_parts_and_names_what_did_not_answer(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    task_queue = f"status-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=task_queue, workflows=[ClusterStatusWorkflow],
                      activities=[patroni, etcd, proxy, backups]):  # fmt: skip
        handle = await start_operation(
            env.client, STATUS, spec.cluster, StatusInput(spec=spec), task_queue=task_queue
        )
        result = ClusterStatus.model_validate(await handle.result())
    assert result.patroni is not None and result.patroni.source == "db2"
    assert result.etcd is not None and result.etcd.leader == "http://10.0.0.11:2379"
    assert [p.host for p in result.proxies] == ["proxy1"]
    assert [(u.part, u.host) for u in result.unreadable] == [
        ("patroni", "db1"),
        ("proxy", "proxy2"),
    ]
    assert "cannot connect" in result.unreadable[0].error
