"""A fake cluster for the Guardian's tests, under the real activity names: what the fake
`guardian.observe` sees is set by the test between looks; records and starts are kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment

from pgha.event_kinds import EventKind
from pgha.event_models import (
    GuardianInput,
    Observation,
    ObserveInput,
    PostFailoverStart,
    RecordInput,
)
from pgha.operations import guardian_id
from pgha.spec import ClusterSpec
from pgha.status_models import ClusterStatus, EtcdMember, EtcdStatus, Member, PatroniStatus
from pgha.worker import build_worker
from pgha.workflows.guardian import Guardian

MEMBERS = ("db1", "db2", "db3")


class FakeCluster:
    """What the fake `guardian.observe` sees; tests change it between looks."""

    def __init__(self) -> None:
        self.leader, self.timeline, self.down = "db1", 2, ""
        self.operation = ""
        self.looks = 0
        self.recorded: list[RecordInput] = []
        self.post_failovers: list[PostFailoverStart] = []
        #: Starts refused with "busy" before one goes through (another operation runs).
        self.busy_for = 0

    def status(self) -> ClusterStatus:
        patroni = PatroniStatus(source="db1", members=[
            Member(name=m, host=m, role="leader" if m == self.leader else "replica",
                   state="stopped" if m == self.down else "running", timeline=self.timeline,
                   lag_bytes=None if m == self.leader else 0)
            for m in MEMBERS])  # fmt: skip
        etcd = EtcdStatus(members=[EtcdMember(endpoint=m, healthy=True, leader=m == "db1")
                                   for m in MEMBERS])  # fmt: skip
        return ClusterStatus(cluster="lab", patroni=patroni, etcd=etcd)

    def kinds(self) -> list[tuple[EventKind, bool]]:
        return [(r.event.kind, r.send) for r in self.recorded]

    def activities(self) -> list[Callable[..., Any]]:
        c = self

        @activity.defn(name="guardian.observe")
        async def observe(inp: ObserveInput) -> Observation:
            c.looks += 1
            return Observation(at=datetime.now(UTC), status=c.status(), operation=c.operation)

        @activity.defn(name="guardian.record")
        async def record(inp: RecordInput) -> str:
            c.recorded.append(inp)
            return "sent: 204" if inp.send else "logged"

        @activity.defn(name="guardian.start_post_failover")
        async def start(inp: PostFailoverStart) -> str:
            if c.busy_for > 0:
                c.busy_for -= 1
                return "busy: cluster lab is busy: backup is running"
            c.post_failovers.append(inp)
            return "started pgha-op:lab"

        return [observe, record, start]


def quick(spec: ClusterSpec) -> ClusterSpec:
    """The spec with a guardian that looks every 0.3 s."""
    return spec.model_copy(update={"guardian": spec.guardian.model_copy(
        update={"interval_s": 0.3})})  # fmt: skip


@asynccontextmanager
async def worker(env: WorkflowEnvironment, fake: FakeCluster, queue: str) -> AsyncIterator[None]:
    async with build_worker(env.client, queue, workflows=[Guardian],
                            activities=fake.activities()):  # fmt: skip
        yield


async def start(env: WorkflowEnvironment, spec: ClusterSpec, queue: str,
                **kw: Any) -> WorkflowHandle[Any, Any]:  # fmt: skip
    return await env.client.start_workflow(
        "Guardian", GuardianInput(spec=quick(spec), **kw), id=guardian_id(spec.cluster),
        task_queue=queue, id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
    )  # fmt: skip


async def until(check: Callable[[], bool], within: float = 20.0) -> None:
    for _ in range(int(within / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the condition never held")
