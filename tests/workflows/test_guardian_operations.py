"""Which pgha operations the guardian counts as running, asked of the real dev server's
visibility: one running now, or one that ended since the previous look."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from pgha.activities.guardian import operations_on
from pgha.search_attributes import CLUSTER_ATTR, OPERATION_ATTR
from pgha.worker import build_worker


@workflow.defn(name="FakeDrill", sandboxed=False)
class FakeDrill:
    def __init__(self) -> None:
        self.done = False

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)


async def seen(env: WorkflowEnvironment, cluster: str, since: datetime | None, want: str) -> None:
    for _ in range(100):  # visibility follows the executions within a moment
        if await operations_on(env.client, cluster, since) == want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never saw {want!r}: {await operations_on(env.client, cluster, since)!r}")


async def test_a_running_drill_counts_and_so_does_one_that_ended_since_the_last_look(
    env: WorkflowEnvironment,
) -> None:
    cluster, queue = f"ops-{uuid.uuid4().hex[:8]}", f"ops-{uuid.uuid4()}"
    async with build_worker(env.client, queue, workflows=[FakeDrill], activities=[]):
        attrs = TypedSearchAttributes([SearchAttributePair(CLUSTER_ATTR, cluster),
                                       SearchAttributePair(OPERATION_ATTR, "drill")])  # fmt: skip
        guard = TypedSearchAttributes([SearchAttributePair(CLUSTER_ATTR, cluster),
                                       SearchAttributePair(OPERATION_ATTR, "guard")])  # fmt: skip
        await env.client.start_workflow("FakeDrill", id=f"g-{cluster}", task_queue=queue,
                                        search_attributes=guard)  # fmt: skip
        await seen(env, cluster, None, "")  # the guardian itself is no operation
        before = datetime.now(UTC)
        handle = await env.client.start_workflow(
            "FakeDrill", id=f"d-{cluster}", task_queue=queue, search_attributes=attrs
        )
        await seen(env, cluster, None, "drill")
        await handle.signal("finish")
        await handle.result()
        await seen(env, cluster, before, "drill")  # ended after the previous look
        await seen(env, cluster, datetime.now(UTC), "")  # ended before it
