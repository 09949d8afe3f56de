"""Preflight against the real lab hosts, through a real Temporal dev server."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from pgha.checks.preflight import PreflightInput, PreflightResult
from pgha.hosts.host import connect
from pgha.operations import PREFLIGHT, start_operation
from pgha.spec import ClusterSpec
from pgha.worker import build_worker

pytestmark = pytest.mark.lab
ROOT = Path(__file__).parents[2]


async def preflight(env: WorkflowEnvironment, spec: ClusterSpec) -> PreflightResult:
    task_queue = f"lab-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue):
        handle = await start_operation(
            env.client, PREFLIGHT, spec.cluster, PreflightInput(spec=spec), task_queue=task_queue
        )
        return PreflightResult.model_validate(await handle.result())


async def failed_preflight(env: WorkflowEnvironment, spec: ClusterSpec) -> PreflightResult:
    with pytest.raises(WorkflowFailureError) as caught:
        await preflight(env, spec)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "PreflightBlocked"
    return PreflightResult.model_validate(cause.details[0])


def docker_exec(host: str, *cmd: str) -> str:
    out = subprocess.run(
        ["docker", "exec", f"pgha-lab-{host}", *cmd], capture_output=True, text=True, check=True
    )
    return out.stdout


async def test_preflight_lab_hosts_all_ready(
    env: WorkflowEnvironment, lab_spec: ClusterSpec
) -> None:
    result = await preflight(env, lab_spec)
    assert [h.host for h in result.hosts] == [h.name for h in lab_spec.hosts]
    assert result.blocking == []
    for report in result.hosts:
        facts = report.facts
        assert facts is not None
        # Checked from outside pgha, through docker rather than SSH.
        meminfo = docker_exec(report.host, "grep", "MemTotal", "/proc/meminfo")
        assert facts.memory_mb == int(re.findall(r"\d+", meminfo)[0]) // 1024
        assert facts.os_codename == "bookworm" and facts.pid1 == "systemd"
        assert facts.source_urls and not facts.source_errors


async def test_preflight_port_held_by_stranger_blocks(
    env: WorkflowEnvironment, lab_spec: ClusterSpec
) -> None:
    unit = f"pgha-test-squatter-{uuid.uuid4().hex[:6]}"
    # A port no lab host uses, even once the lab is provisioned (HAProxy holds 7000 then).
    stats_port = 7799
    spec = lab_spec.model_copy(
        update={"haproxy": lab_spec.haproxy.model_copy(update={"stats_port": stats_port})}
    )
    async with connect(lab_spec.target("proxy1")) as host:
        await host.run(["systemd-run", f"--unit={unit}", "python3", "-m", "http.server",
                        str(stats_port)])  # fmt: skip
        try:
            for _ in range(50):
                if f":{stats_port} " in (await host.run(["ss", "-Hltn"])).stdout:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"the squatter never listened on {stats_port}")
            report = await failed_preflight(env, spec)
        finally:
            await host.run(["systemctl", "stop", unit], check=False)
    assert report.blocking == [
        f"proxy1: ports: port {stats_port} (needed by haproxy) is in use by python3; stop it "
        "or change the port in the spec"
    ]


async def test_preflight_host_key_mismatch_blocks_without_retry(
    env: WorkflowEnvironment, lab_spec: ClusterSpec, tmp_path: Path
) -> None:
    real = Path(os.path.expanduser(lab_spec.ssh.known_hosts)).read_text().splitlines()
    db2 = str(lab_spec.host("db2").address)
    db1_key = next(line for line in real if line.split()[0] == str(lab_spec.host("db1").address))
    forged = [line for line in real if line.split()[0] != db2]
    forged.append(f"{db2} {' '.join(db1_key.split()[1:])}")  # db1's key claimed for db2
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(forged) + "\n")
    spec = lab_spec.model_copy(
        update={"ssh": lab_spec.ssh.model_copy(update={"known_hosts": str(known)})}
    )
    report = await failed_preflight(env, spec)
    (line,) = report.blocking
    assert line.startswith(
        f"db2: ssh: host db2 ({db2}): the SSH host key does not match the one in {known}"
    )


def test_cli_preflight_on_embedded_server_reports_six_ready_hosts(
    lab_spec: ClusterSpec, tmp_path: Path
) -> None:
    """The quick start's command, as a user runs it: it starts the embedded server itself."""
    env = {**os.environ, "PGHA_STATE_DIR": str(tmp_path), "COLUMNS": "160"}
    env.pop("PGHA_TEMPORAL_ADDRESS", None)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pgha.cli", "run", "preflight", "--cluster", "lab"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        assert "preflight passed: 6 hosts ready" in run.stdout
        wf_id = re.search(r"workflow (pgha-preflight:lab:\S+)", run.stdout)
        assert wf_id, run.stdout
        assert (
            f"http://localhost:8233/namespaces/default/workflows/{wf_id[1]}"
            in run.stdout.replace("\n", "")
        )

        async def tagged() -> int:
            client = await Client.connect("127.0.0.1:7233", data_converter=pydantic_data_converter)
            for _ in range(50):  # visibility is eventually consistent
                n = await client.count_workflows(
                    f'PghaCluster="lab" AND PghaOperation="preflight" AND WorkflowId="{wf_id[1]}"'
                )
                if n.count:
                    return n.count
                await asyncio.sleep(0.2)
            return 0

        assert asyncio.run(tagged()) == 1
    finally:
        pid_file = tmp_path / "temporal" / "server.pid"
        if pid_file.exists():  # we started it: stop it
            subprocess.run(["kill", pid_file.read_text().strip()], check=False)
