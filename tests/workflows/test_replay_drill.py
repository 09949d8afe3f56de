"""Replay of shipped Drill histories (passed, cancelled during the fault): a change to the
drill's order of steps that would break drills in flight fails here.

Regenerate only for a deliberate, patched change:
PGHA_WRITE_HISTORIES=1 pytest tests/workflows/test_replay_drill.py
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from pgha.drill_models import DrillInput, Scenario
from pgha.operations import DRILL, start_operation
from pgha.worker import build_worker
from pgha.workflows.drill import Drill
from tests.specs import reference_spec
from tests.workflows.drill_fakes import FakeDrillCluster
from tests.workflows.replay_support import HISTORIES, replay_shipped

CASES = {
    "drill_switchover": Scenario.switchover,
    "drill_stop_patroni": Scenario.stop_patroni,
    "drill_cancelled": Scenario.kill_postgres,
}


@pytest.mark.skipif(not os.environ.get("PGHA_WRITE_HISTORIES"), reason="writes golden files")
async def test_write_histories(env: WorkflowEnvironment) -> None:
    for name, scenario in CASES.items():
        fake = FakeDrillCluster()
        fake.fault_hangs = name == "drill_cancelled"
        spec = reference_spec(f"replay-{uuid.uuid4().hex[:6]}")
        drill = spec.drill.model_copy(update={"require_approval": False})
        spec = spec.model_copy(update={"drill": drill})
        task_queue = f"replay-{uuid.uuid4()}"
        async with build_worker(env.client, task_queue, workflows=[Drill],
                                activities=fake.activities()):  # fmt: skip
            inp = DrillInput(spec=spec, scenario=scenario, settle_s=1, hold_s=1)
            handle = await start_operation(env.client, DRILL, spec.cluster, inp,
                                           task_queue=task_queue)  # fmt: skip
            if fake.fault_hangs:
                await asyncio.wait_for(fake.fault_started.wait(), 20)
                await handle.cancel()
            try:
                await handle.result()
            except Exception:  # the cancelled case ends so by design
                pass
            fake.fault_hangs = False
            history = await handle.fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.mark.parametrize("name", sorted(CASES))
async def test_shipped_history_replays_without_nondeterminism(name: str) -> None:
    await replay_shipped(name, f"pgha-op:{name}")
