"""Replay of shipped Upgrade histories (a whole upgrade; one stopped at a broken member and
resumed): a change to the upgrade's order of steps that would break upgrades in flight,
some of which wait days for an operator, fails here.

Regenerate only for a deliberate, patched change:
PGHA_WRITE_HISTORIES=1 pytest tests/workflows/test_replay_upgrade.py
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from pgha.operations import UPGRADE, start_operation
from pgha.rolling_models import Decision, DecisionAction, UpgradeInput
from pgha.worker import build_worker
from pgha.workflows.upgrade import Upgrade
from tests.specs import reference_spec
from tests.workflows.replay_support import HISTORIES, replay_shipped
from tests.workflows.upgrade_fakes import CLIENT, SERVER, FakeUpgradeCluster

CASES = ["upgrade_passed", "upgrade_resumed"]


@pytest.mark.skipif(not os.environ.get("PGHA_WRITE_HISTORIES"), reason="writes golden files")
async def test_write_histories(env: WorkflowEnvironment) -> None:
    for name in CASES:
        fake = FakeUpgradeCluster()
        if name == "upgrade_resumed":
            fake.broken_on_new = {"db3"}
        spec = reference_spec(f"replay-{uuid.uuid4().hex[:6]}")
        task_queue = f"replay-{uuid.uuid4()}"
        async with build_worker(env.client, task_queue, workflows=[Upgrade],
                                activities=fake.activities()):  # fmt: skip
            inp = UpgradeInput(spec=spec, packages={SERVER: "15.20", CLIENT: "15.20"})
            handle = await start_operation(env.client, UPGRADE, spec.cluster, inp,
                                           task_queue=task_queue)  # fmt: skip
            if fake.broken_on_new:
                await asyncio.wait_for(fake.blocked.wait(), 30)
                await asyncio.sleep(1)
                fake.broken_on_new = set()
                await handle.execute_update("decide", Decision(action=DecisionAction.resume),
                                            result_type=str)  # fmt: skip
            await handle.result()
            history = await handle.fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.mark.parametrize("name", CASES)
async def test_shipped_history_replays_without_nondeterminism(name: str) -> None:
    await replay_shipped(name, f"pgha-op:{name}")
