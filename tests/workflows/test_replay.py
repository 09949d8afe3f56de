"""Replay of shipped histories: a workflow change that breaks running workflows fails here.

Regenerate a history only for a deliberate, patched change:
PGHA_WRITE_HISTORIES=1 pytest tests/workflows/test_replay.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from pgha.checks.preflight import PreflightInput
from pgha.operations import PREFLIGHT, start_operation
from pgha.worker import WORKFLOWS
from pgha.workflows.preflight import Preflight
from tests.specs import reference_spec
from tests.workflows.fakes import check_host_db2_blocked, check_host_ok

HISTORIES = Path(__file__).parent / "histories"
CASES = {"preflight_ok": check_host_ok, "preflight_blocked": check_host_db2_blocked}


@pytest.mark.skipif(not os.environ.get("PGHA_WRITE_HISTORIES"), reason="writes golden files")
async def test_write_histories(env: WorkflowEnvironment, task_queue: str) -> None:
    HISTORIES.mkdir(exist_ok=True)
    for name, activity in CASES.items():
        spec = reference_spec("replay")
        async with Worker(
            env.client, task_queue=task_queue, workflows=[Preflight], activities=[activity]
        ):
            handle = await start_operation(
                env.client, PREFLIGHT, spec.cluster, PreflightInput(spec=spec),
                task_queue=task_queue,
            )  # fmt: skip
            try:
                await handle.result()
            except Exception:  # the blocked case fails by design
                pass
            history = await handle.fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.mark.parametrize("name", sorted(CASES))
async def test_shipped_history_replays_without_nondeterminism(name: str) -> None:
    path = HISTORIES / f"{name}.json"
    history = WorkflowHistory.from_json(f"pgha-preflight:{name}", path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
