"""Replaying a shipped history against today's workflows (shared by the replay tests)."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from pgha.worker import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"


async def replay_shipped(name: str, workflow_id: str) -> None:
    """Replay ``histories/<name>.json``; raises on any nondeterminism."""
    text = (HISTORIES / f"{name}.json").read_text()
    history = WorkflowHistory.from_json(workflow_id, text)
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
