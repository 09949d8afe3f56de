"""Durability and exclusivity: a killed worker's preflight is finished by another worker;
a second mutating operation on a cluster is refused while the first runs."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pgha.checks.preflight import PreflightInput, PreflightResult
from pgha.errors import ClusterBusy
from pgha.operations import PREFLIGHT, Operation, lock_id, start_operation
from pgha.spec import ClusterSpec
from tests.workflows.fakes import HoldCluster

ROOT = Path(__file__).parents[2]


def spawn_worker(env: WorkflowEnvironment, task_queue: str, log: Path, seconds: float):  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.workflows.crash_worker",
         env.client.service_client.config.target_host, task_queue, str(log), str(seconds)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "worker ready"
    return proc


def attempts(log: Path) -> list[dict[str, int | str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_worker_killed_mid_preflight_new_worker_finishes(
    env: WorkflowEnvironment, task_queue: str, spec: ClusterSpec, tmp_path: Path
) -> None:
    log = tmp_path / "attempts.jsonl"
    first = spawn_worker(env, task_queue, log, seconds=60)
    try:
        handle = await start_operation(
            env.client, PREFLIGHT, spec.cluster, PreflightInput(spec=spec), task_queue=task_queue
        )
        for _ in range(100):  # every host check has started on the first worker
            if len(attempts(log)) == len(spec.hosts):
                break
            await asyncio.sleep(0.1)
        assert len(attempts(log)) == len(spec.hosts)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    second = spawn_worker(env, task_queue, log, seconds=0.2)
    try:
        result = PreflightResult.model_validate(await asyncio.wait_for(handle.result(), 60))
    finally:
        second.terminate()
        second.wait()
    assert len(result.hosts) == len(spec.hosts)
    seen = attempts(log)
    retried = [a for a in seen if a["pid"] == second.pid]
    assert {a["host"] for a in retried} == {h.name for h in spec.hosts}
    assert all(a["attempt"] == 2 for a in retried)


HOLD = Operation("hold", "HoldCluster", mutating=True)


async def test_second_mutating_operation_on_cluster_refused(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    cluster = f"lock-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=task_queue, workflows=[HoldCluster]):
        first = await start_operation(env.client, HOLD, cluster, cluster, task_queue=task_queue)
        assert first.id == lock_id(cluster)
        with pytest.raises(ClusterBusy) as caught:
            await start_operation(env.client, HOLD, cluster, cluster, task_queue=task_queue)
        message = str(caught.value)
        assert f"cluster {cluster} is busy: hold is running since" in message
        assert f"`pgha watch pgha-op:{cluster}`" in message
        assert f"`pgha cancel pgha-op:{cluster}`" in message
        # Another cluster is not affected by this one's lock.
        other = await start_operation(env.client, HOLD, f"{cluster}-b", "b", task_queue=task_queue)
        await other.signal("finish")
        await first.signal("finish")
        assert await first.result() == cluster
        # Once the holder has finished, the next operation may start.
        again = await start_operation(env.client, HOLD, cluster, cluster, task_queue=task_queue)
        await again.signal("finish")
        assert await again.result() == cluster
