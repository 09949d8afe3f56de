"""Replay of a shipped Reconfigure history (a raised restart setting: replicas, switchover,
the old primary): a change to its order of steps that would break runs in flight fails here.

Regenerate only for a deliberate, patched change:
PGHA_WRITE_HISTORIES=1 pytest tests/workflows/test_replay_reconfigure.py
"""

from __future__ import annotations

import os
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from pgha.operations import RECONFIGURE, start_operation
from pgha.reconfigure_models import ReconfigureInput, ReconfigurePlan, SettingChange
from pgha.worker import build_worker
from pgha.workflows.reconfigure import Reconfigure
from tests.specs import reference_spec
from tests.workflows.reconfigure_fakes import FakeReconfigureCluster
from tests.workflows.replay_support import HISTORIES, replay_shipped

NAME = "reconfigure_restarts"


@pytest.mark.skipif(not os.environ.get("PGHA_WRITE_HISTORIES"), reason="writes golden files")
async def test_write_history(env: WorkflowEnvironment) -> None:
    change = SettingChange(scope="dcs", key="postgresql.parameters.max_connections", old="100",
                           new="120", restart=True)  # fmt: skip
    fake = FakeReconfigureCluster(ReconfigurePlan(leader="db1", changes=[change]))
    spec = reference_spec(f"replay-{uuid.uuid4().hex[:6]}")
    task_queue = f"replay-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[Reconfigure],
                            activities=fake.activities()):  # fmt: skip
        inp = ReconfigureInput(spec=spec)
        handle = await start_operation(env.client, RECONFIGURE, spec.cluster, inp,
                                       task_queue=task_queue)  # fmt: skip
        await handle.result()
        history = await handle.fetch_history()
    (HISTORIES / f"{NAME}.json").write_text(history.to_json())


async def test_shipped_history_replays_without_nondeterminism() -> None:
    await replay_shipped(NAME, f"pgha-op:{NAME}")
