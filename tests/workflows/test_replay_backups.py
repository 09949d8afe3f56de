"""Replay of shipped Backup and VerifyRestore histories (passed, failed, cancelled): a
workflow change that would break runs in flight fails here.

Regenerate only for a deliberate, patched change:
PGHA_WRITE_HISTORIES=1 pytest tests/workflows/test_replay_backups.py
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from pgha.backup_models import BackupInput, BackupType, CheckOutcome, VerifyRestoreInput
from pgha.operations import BACKUP, VERIFY_RESTORE, Operation, start_operation
from pgha.worker import build_worker
from pgha.workflows.backup import Backup
from pgha.workflows.verify_restore import VerifyRestore
from tests.specs import reference_spec
from tests.workflows.backup_fakes import FakeCluster
from tests.workflows.replay_support import HISTORIES, replay_shipped


def _failing_amcheck(fake: FakeCluster) -> None:
    fake.checks[1] = CheckOutcome(name="pg_amcheck", passed=False, detail="block 3: bad")


def _hanging_restore(fake: FakeCluster) -> None:
    fake.restore_hangs = True


CASES: dict[str, tuple[Operation, Callable[[Any], Any], Callable[[FakeCluster], None]]] = {
    "backup_incr": (BACKUP, lambda s: BackupInput(spec=s, type=BackupType.incr), lambda f: None),
    "verify_passed": (VERIFY_RESTORE, lambda s: VerifyRestoreInput(spec=s), lambda f: None),
    "verify_failed": (VERIFY_RESTORE, lambda s: VerifyRestoreInput(spec=s), _failing_amcheck),
    "verify_cancelled": (VERIFY_RESTORE, lambda s: VerifyRestoreInput(spec=s), _hanging_restore),
}


@pytest.mark.skipif(not os.environ.get("PGHA_WRITE_HISTORIES"), reason="writes golden files")
async def test_write_histories(env: WorkflowEnvironment) -> None:
    HISTORIES.mkdir(exist_ok=True)
    for name, (op, arg, setup) in CASES.items():
        fake = FakeCluster()
        setup(fake)
        spec = reference_spec(f"replay-{uuid.uuid4().hex[:6]}")
        task_queue = f"replay-{uuid.uuid4()}"
        async with build_worker(env.client, task_queue, workflows=[Backup, VerifyRestore],
                                activities=fake.activities()):  # fmt: skip
            handle = await start_operation(
                env.client, op, spec.cluster, arg(spec), task_queue=task_queue
            )
            if name == "verify_cancelled":
                await asyncio.wait_for(fake.restore_started.wait(), 20)
                await handle.cancel()
            try:
                await handle.result()
            except Exception:  # the failed and cancelled cases end so by design
                pass
            fake.restore_hangs = False
            history = await handle.fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.mark.parametrize("name", sorted(CASES))
async def test_shipped_history_replays_without_nondeterminism(name: str) -> None:
    await replay_shipped(name, f"pgha-op:{name}")
