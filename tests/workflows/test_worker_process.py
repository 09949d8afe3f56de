"""`pgha worker` as an operator runs it: polls the task queue, several at once, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.testing import WorkflowEnvironment

from pgha.worker import worker_polling

ROOT = Path(__file__).parents[2]


def start_worker(env: WorkflowEnvironment, task_queue: str) -> subprocess.Popen[str]:
    environ = {
        **os.environ,
        "PGHA_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "PGHA_TASK_QUEUE": task_queue,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "pgha.cli", "worker"],
        cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


async def pollers(env: WorkflowEnvironment, task_queue: str) -> set[str]:
    resp = await env.client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=env.client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return {p.identity for p in resp.pollers}


async def eventually_polling(env: WorkflowEnvironment, task_queue: str, count: int) -> bool:
    for _ in range(100):
        if len(await pollers(env, task_queue)) >= count:
            return await worker_polling(env.client, task_queue)
        await asyncio.sleep(0.1)
    return False


async def test_two_worker_processes_poll_and_stop_cleanly_on_sigterm(
    env: WorkflowEnvironment,
) -> None:
    task_queue = f"workers-{uuid.uuid4()}"
    workers = [start_worker(env, task_queue) for _ in range(2)]
    try:
        assert await eventually_polling(env, task_queue, count=2)
        for w in workers:
            assert w.poll() is None, w.stdout.read() if w.stdout else ""
            w.send_signal(signal.SIGTERM)
        codes = [await asyncio.to_thread(w.wait, 40) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    outputs = [w.stdout.read() if w.stdout else "" for w in workers]
    assert codes == [0, 0], outputs
    output = outputs[0]
    assert f"worker on task queue {task_queue}" in output
    assert "Traceback" not in output
