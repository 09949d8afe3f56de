"""Benchmark: a cold provision of the lab from bare hosts, then the idempotent re-run.

Prints wall times and the time of each phase (taken from the workflow history), and writes
JSON to bench/results/provision.json. Run: .venv/bin/python -m bench.provision
(recreates the lab's hosts: everything on them is lost).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from pgha.lab.hosts import lab_status, lab_up
from pgha.operations import PROVISION, start_operation
from pgha.provision_models import ProvisionInput, ProvisionResult
from pgha.settings import temporal_settings
from pgha.spec import load_spec
from pgha.temporal import connect
from pgha.worker import in_process_worker

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def phase_of(activity_type: str) -> str:
    return activity_type.split(".", 1)[0]


async def phase_times(handle: WorkflowHandle[Any, Any]) -> dict[str, float]:
    """Seconds from the first start to the last completion of each subsystem's activities."""
    history = await handle.fetch_history()
    scheduled: dict[int, str] = {}
    spans: dict[str, list[datetime]] = defaultdict(list)
    for e in history.events:
        t = e.event_time.ToDatetime()
        if e.HasField("activity_task_scheduled_event_attributes"):
            a = e.activity_task_scheduled_event_attributes
            scheduled[e.event_id] = phase_of(a.activity_type.name)
            spans[scheduled[e.event_id]].append(t)
        elif e.HasField("activity_task_completed_event_attributes"):
            spans[scheduled[e.activity_task_completed_event_attributes.scheduled_event_id]].append(
                t
            )
    return {p: round((max(ts) - min(ts)).total_seconds(), 2) for p, ts in spans.items()}


async def run_once(
    client: Client, task_queue: str
) -> tuple[float, ProvisionResult, dict[str, float]]:
    spec = load_spec("lab", ROOT / "clusters")
    started = time.monotonic()
    handle = await start_operation(
        client, PROVISION, spec.cluster, ProvisionInput(spec=spec), task_queue=task_queue
    )
    result = ProvisionResult.model_validate(await handle.result())
    return time.monotonic() - started, result, await phase_times(handle)


async def main(fresh: bool) -> None:
    if fresh:
        names = [h.container for h in await lab_status()]
        if names:
            await asyncio.to_thread(
                subprocess.run, ["docker", "rm", "-f", *names], check=True, capture_output=True
            )
    await lab_up(6, ROOT / "clusters")
    settings = temporal_settings()
    client = await connect(settings)
    task_queue = f"bench-{int(time.time())}"
    async with in_process_worker(client, task_queue):
        cold_s, cold, cold_phases = await run_once(client, task_queue)
        rerun_s, rerun, rerun_phases = await run_once(client, task_queue)
    report = {
        "when": datetime.now().isoformat(timespec="seconds"),
        "fresh_hosts": fresh,
        "cold_s": round(cold_s, 1),
        "cold_changed_steps": cold.changed,
        "cold_phases_s": cold_phases,
        "rerun_s": round(rerun_s, 1),
        "rerun_changed_steps": rerun.changed,
        "rerun_phases_s": rerun_phases,
        "steps": cold.steps,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "provision.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"cold provision: {cold_s:.1f} s ({cold.changed} of {cold.steps} steps changed)")
    for phase, secs in cold_phases.items():
        print(f"  {phase:12} {secs:6.1f} s")
    print(f"idempotent re-run: {rerun_s:.1f} s ({rerun.changed} steps changed)")
    for phase, secs in rerun_phases.items():
        print(f"  {phase:12} {secs:6.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep-hosts", action="store_true",
                        help="don't recreate the lab hosts (not a cold run)")  # fmt: skip
    args = parser.parse_args()
    asyncio.run(main(fresh=not args.keep_hosts))
