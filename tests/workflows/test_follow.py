"""`pgha run` follows its workflow and never waits forever for a worker that is gone."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from pgha import cli
from pgha.checks.preflight import PreflightInput
from pgha.operations import PREFLIGHT, start_operation
from pgha.settings import TemporalSettings
from pgha.spec import ClusterSpec
from pgha.worker import build_worker, worker_polling


async def test_follow_runs_own_worker_when_polling_worker_has_stopped(
    env: WorkflowEnvironment, task_queue: str, spec: ClusterSpec
) -> None:
    # A worker polled and stopped cleanly: the server still lists it as a poller.
    async with build_worker(env.client, task_queue):
        for _ in range(50):
            if await worker_polling(env.client, task_queue):
                break
            await asyncio.sleep(0.1)
    assert await worker_polling(env.client, task_queue)
    # Hosts with no known_hosts entry: the real check fails at once, without retries.
    spec = spec.model_copy(
        update={"ssh": spec.ssh.model_copy(update={"known_hosts": "/nonexistent/known_hosts"})}
    )
    handle = await start_operation(
        env.client, PREFLIGHT, spec.cluster, PreflightInput(spec=spec), task_queue=task_queue
    )
    settings = TemporalSettings(address="test", task_queue=task_queue)
    with pytest.raises(WorkflowFailureError) as caught:
        await cli._follow(env.client, settings, handle)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "PreflightBlocked"
    assert "known_hosts file /nonexistent/known_hosts does not exist" in cause.message
