"""A worker SIGKILLed in the Patroni phase, and its successor SIGKILLed in the pgBackRest
phase: a third worker finishes the same workflow, and nothing ran twice that must not."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from pgha.lab.hosts import lab_status, lab_up
from pgha.operations import PROVISION, start_operation
from pgha.progress import Progress, StepState
from pgha.provision_models import ProvisionInput, ProvisionResult
from pgha.spec import load_spec
from tests.lab.helpers import docker_exec

pytestmark = pytest.mark.lab
ROOT = Path(__file__).parents[2]


def spawn_worker(env: WorkflowEnvironment, task_queue: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.lab.provision_worker",
         env.client.service_client.config.target_host, task_queue],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "worker ready"
    return proc


async def kill_when_running(
    handle: WorkflowHandle[object, object], worker: subprocess.Popen[str], phase: str,
    step_prefix: str,
) -> str:  # fmt: skip
    """SIGKILL the worker while a step of ``phase`` whose key starts with ``step_prefix`` runs."""
    for _ in range(1200):
        try:
            p = await handle.query("progress", result_type=Progress)
        except Exception:
            p = None
        if p is not None:
            running = [s for s in p.steps if s.state == StepState.running
                       and s.key.startswith(step_prefix)]  # fmt: skip
            if p.phase == phase and running:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                return running[0].key
        await asyncio.sleep(0.1)
    pytest.fail(f"phase {phase} never ran a {step_prefix} step")


async def test_provision_survives_worker_kills_in_patroni_and_backup_phases(
    env: WorkflowEnvironment,
) -> None:
    names = [h.container for h in await lab_status()]
    if names:
        await asyncio.to_thread(subprocess.run, ["docker", "rm", "-f", *names], check=True,
                                capture_output=True)  # fmt: skip
    spec = load_spec((await lab_up(6, ROOT / "clusters")).spec_path)
    task_queue = f"resume-{uuid.uuid4()}"
    workers = [spawn_worker(env, task_queue)]
    try:
        handle = await start_operation(
            env.client, PROVISION, spec.cluster, ProvisionInput(spec=spec), task_queue=task_queue
        )
        await kill_when_running(handle, workers[-1], "patroni", "patroni-")
        workers.append(spawn_worker(env, task_queue))
        await kill_when_running(handle, workers[-1], "backups", "backup-")
        workers.append(spawn_worker(env, task_queue))
        result = ProvisionResult.model_validate(await asyncio.wait_for(handle.result(), 600))
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
                w.wait()
    assert result.verified.startswith("wrote through")
    # The killed steps really were cut off and run again by the next worker.
    history = await handle.fetch_history()
    types: dict[int, str] = {}
    retried: set[str] = set()
    for e in history.events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            types[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        elif e.HasField("activity_task_started_event_attributes"):
            a = e.activity_task_started_event_attributes
            if a.attempt > 1:
                retried.add(types[a.scheduled_event_id].split(".")[0])
    assert {"patroni", "pgbackrest"} <= retried, retried
    # One initdb: every member has the system identifier Patroni recorded in etcd.
    _, init = await docker_exec("db1", "etcdctl", "get", "--print-value-only",
                                f"/pgha/{spec.cluster}/initialize")  # fmt: skip
    for host in ("db1", "db2", "db3"):
        _, control = await docker_exec(
            host, "/usr/lib/postgresql/15/bin/pg_controldata", spec.postgres.data_path
        )
        assert f"Database system identifier:           {init}" in control, (host, init)
    # One etcd cluster: three members, one cluster id.
    _, status = await docker_exec(
        "db1", "etcdctl", "--endpoints=" + ",".join(
            f"http://{h.address}:2379" for h in spec.hosts if "etcd" in h.roles),
        "endpoint", "status", "-w", "json",
    )  # fmt: skip
    ids = {s["Status"]["header"]["cluster_id"] for s in json.loads(status)}
    assert len(json.loads(status)) == 3 and len(ids) == 1
    # One first full backup, not two.
    _, info = await docker_exec("backup1", "runuser", "-u", "postgres", "--", "pgbackrest",
                                f"--stanza={spec.stanza}", "--output=json", "info")  # fmt: skip
    backups = json.loads(info)[0]["backup"]
    assert [b["type"] for b in backups] == ["full"]
