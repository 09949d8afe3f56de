"""Replay of shipped Guardian and PostFailover histories: a guardian that saw a failover
and started post-failover, then stopped; a post-failover that reinitialised the old
primary, took the backup and verified it. A guardian runs for months, so a change to
what it does per look that would break a running one fails here.

Regenerate only for a deliberate, patched change:
PGHA_WRITE_HISTORIES=1 pytest tests/workflows/test_replay_guardian.py
"""

from __future__ import annotations

import os
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from pgha.event_models import PostFailoverInput
from pgha.operations import POST_FAILOVER, guardian_id, start_operation
from pgha.worker import build_worker
from pgha.workflows.post_failover import PostFailover
from tests.specs import reference_spec
from tests.workflows.guardian_fakes import FakeCluster, start, until, worker
from tests.workflows.replay_support import HISTORIES, replay_shipped
from tests.workflows.test_post_failover_workflow import FakeBackup, FakeVerify, fakes


@pytest.mark.skipif(not os.environ.get("PGHA_WRITE_HISTORIES"), reason="writes golden files")
async def test_write_histories(env: WorkflowEnvironment) -> None:
    spec = reference_spec("replay-guardian")
    fake, queue = FakeCluster(), f"replay-{uuid.uuid4()}"
    async with worker(env, fake, queue):
        handle = await start(env, spec, queue)
        await until(lambda: fake.looks >= 2)
        fake.leader, fake.timeline, fake.down = "db2", 3, "db1"
        await until(lambda: bool(fake.post_failovers))
        await handle.signal("stop")
        await handle.result()
        (HISTORIES / "guardian_failover.json").write_text((await handle.fetch_history()).to_json())

    spec = reference_spec("replay-post-failover")
    queue = f"replay-{uuid.uuid4()}"
    async with build_worker(env.client, queue, workflows=[PostFailover, FakeBackup, FakeVerify],
                            activities=fakes(rejoins=False)):  # fmt: skip
        inp = PostFailoverInput(spec=spec, old_leader="db1", new_leader="db2",
                                rejoin_timeout_s=5, reinit=True)  # fmt: skip
        pf = await start_operation(env.client, POST_FAILOVER, spec.cluster, inp, task_queue=queue)
        await pf.result()
        (HISTORIES / "post_failover_reinit.json").write_text((await pf.fetch_history()).to_json())


async def test_shipped_guardian_history_replays_without_nondeterminism() -> None:
    await replay_shipped("guardian_failover", guardian_id("replay-guardian"))


async def test_shipped_post_failover_history_replays_without_nondeterminism() -> None:
    await replay_shipped("post_failover_reinit", "pgha-op:replay-post-failover")
