"""Preflight orchestration on a real dev server with fake host checks."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pgha.checks.preflight import PreflightInput, PreflightResult
from pgha.operations import PREFLIGHT, start_operation
from pgha.progress import Progress, StepState
from pgha.search_attributes import CLUSTER_ATTR, OPERATION_ATTR
from pgha.spec import ClusterSpec
from pgha.workflows.preflight import Preflight
from tests.workflows.fakes import (
    check_host_db2_blocked,
    check_host_ok,
    check_host_proxy1_key_mismatch,
)


def worker(env: WorkflowEnvironment, task_queue: str, activity: object) -> Worker:
    return Worker(env.client, task_queue=task_queue, workflows=[Preflight], activities=[activity])


async def failed_preflight(
    env: WorkflowEnvironment, task_queue: str, spec: ClusterSpec, activity: object
) -> tuple[ApplicationError, PreflightResult, Progress, WorkflowHandle[Any, Any]]:
    """Run a preflight that must fail: its failure, the report it carries, progress, handle."""
    async with worker(env, task_queue, activity):
        handle = await start_operation(
            env.client, PREFLIGHT, spec.cluster, PreflightInput(spec=spec), task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
        progress = await handle.query("progress", result_type=Progress)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    return cause, PreflightResult.model_validate(cause.details[0]), progress, handle


async def test_preflight_all_hosts_healthy_returns_report_and_tags_run(
    env: WorkflowEnvironment, task_queue: str, spec: ClusterSpec
) -> None:
    async with worker(env, task_queue, check_host_ok):
        handle = await start_operation(
            env.client, PREFLIGHT, spec.cluster, PreflightInput(spec=spec), task_queue=task_queue
        )
        result = PreflightResult.model_validate(await handle.result())
        progress = await handle.query("progress", result_type=Progress)
        desc = await handle.describe()
        # What the Web UI shows as the workflow's current details and summary.
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert [h.host for h in result.hosts] == [h.name for h in spec.hosts]
    assert result.blocking == []
    assert progress.done and progress.outcome == "6 hosts ready"
    assert {s.state for s in progress.steps} == {StepState.ok}
    assert desc.typed_search_attributes.get(CLUSTER_ATTR) == spec.cluster
    assert desc.typed_search_attributes.get(OPERATION_ATTR) == "preflight"
    assert handle.id.startswith(f"pgha-preflight:{spec.cluster}:")
    assert metadata.current_details.startswith(f"**preflight** on `{spec.cluster}`: done")
    assert "| ✓ | check host | db3 | ready |" in metadata.current_details
    assert await desc.static_summary() == f"preflight of cluster {spec.cluster}"


async def test_preflight_blocking_finding_fails_with_report(
    env: WorkflowEnvironment, task_queue: str, spec: ClusterSpec
) -> None:
    cause, report, progress, _ = await failed_preflight(
        env, task_queue, spec, check_host_db2_blocked
    )
    assert cause.type == "PreflightBlocked"
    assert "db2: ports: port 5432 is in use by nginx" in cause.message
    assert [h.host for h in report.hosts if h.blocking] == ["db2"]
    assert progress.step("db2").state == StepState.failed
    assert progress.step("db1").state == StepState.ok


async def test_preflight_host_key_mismatch_is_blocking_finding_not_retried(
    env: WorkflowEnvironment, task_queue: str, spec: ClusterSpec
) -> None:
    _, report, progress, handle = await failed_preflight(
        env, task_queue, spec, check_host_proxy1_key_mismatch
    )
    assert progress.step("proxy1").state == StepState.failed
    (proxy1,) = [h for h in report.hosts if h.host == "proxy1"]
    assert proxy1.blocking[0].check == "ssh"
    assert "host key does not match" in proxy1.blocking[0].message
    history = await handle.fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert max(attempts) == 1  # non-retryable: no second attempt
