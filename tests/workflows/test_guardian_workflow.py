"""The Guardian on the real dev server with a fake cluster to look at: a quiet cluster makes
no event; a failover is alerted on and starts post-failover; a drill's own failover is
logged only; an event sent in is handled at once; the run continues as new with its state;
a worker that dies loses no event; a stop ends it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment

from pgha.event_kinds import EventKind
from pgha.event_models import (
    ExternalEvent,
    GuardianInput,
    GuardianView,
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


async def stop(handle: WorkflowHandle[Any, Any]) -> GuardianView:
    await handle.signal("stop")
    return GuardianView.model_validate(await handle.result())


async def test_a_quiet_cluster_makes_no_event(env: WorkflowEnvironment, spec: ClusterSpec) -> None:
    fake, queue = FakeCluster(), f"guard-{uuid.uuid4()}"
    async with worker(env, fake, queue):
        handle = await start(env, spec, queue)
        await until(lambda: fake.looks >= 5)
        view = await stop(handle)
    assert fake.recorded == [] and view.recent == [] and view.looks >= 5
    assert view.leader == "db1" and view.timeline == 2


async def test_a_failover_is_alerted_on_and_starts_post_failover_once(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake, queue = FakeCluster(), f"guard-{uuid.uuid4()}"
    async with worker(env, fake, queue):
        handle = await start(env, spec, queue)
        await until(lambda: fake.looks >= 2)
        fake.leader, fake.timeline, fake.down = "db2", 3, "db1"
        await until(lambda: len(fake.post_failovers) == 1)
        looks = fake.looks
        await until(lambda: fake.looks >= looks + 3)  # the failover is not seen again
        view = await stop(handle)
    assert fake.kinds() == [(EventKind.leader_changed, True), (EventKind.timeline_changed, False),
                            (EventKind.member_down, True)]  # fmt: skip
    started = fake.post_failovers[0].inp
    assert (started.old_leader, started.new_leader) == ("db1", "db2")
    leader_change = view.recent[0]
    assert leader_change.done == ["alert: sent: 204", "post_failover: started pgha-op:lab"]
    assert view.leader == "db2" and view.timeline == 3


async def test_a_drills_own_failover_is_logged_not_an_incident(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake, queue = FakeCluster(), f"guard-{uuid.uuid4()}"
    async with worker(env, fake, queue):
        handle = await start(env, spec, queue)
        await until(lambda: fake.looks >= 2)
        fake.operation = "drill"
        fake.leader, fake.timeline = "db2", 3
        await until(lambda: len(fake.recorded) >= 2)
        view = await stop(handle)
    assert [send for _, send in fake.kinds()] == [False, False]  # no alert
    assert fake.post_failovers == []
    assert all(h.event.during == "drill" for h in view.recent)
    assert "no reaction: drill was running (its own change)" in view.recent[0].done


async def test_an_event_sent_in_is_handled_at_once(env: WorkflowEnvironment,
                                                   spec: ClusterSpec) -> None:  # fmt: skip
    fake, queue = FakeCluster(), f"guard-{uuid.uuid4()}"
    async with worker(env, fake, queue):
        handle = await start(env, spec, queue)
        await until(lambda: fake.looks >= 1)
        said = await handle.execute_update(
            "send_event", ExternalEvent(kind=EventKind.member_down, subject="db3",
                                        detail="patroni on_stop callback", source="patroni"),
            result_type=str)  # fmt: skip
        await until(lambda: len(fake.recorded) == 1)
        view = await stop(handle)
    assert "queued" in said
    event = view.recent[0].event
    assert (event.kind, event.subject, event.source) == (EventKind.member_down, "db3", "patroni")
    assert fake.recorded[0].send  # member_down alerts in the default reactions


async def test_the_run_continues_as_new_and_keeps_what_it_saw(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake, queue = FakeCluster(), f"guard-{uuid.uuid4()}"
    async with worker(env, fake, queue):
        handle = await start(env, spec, queue, looks_per_run=3)
        first_run = (await handle.describe()).run_id
        await until(lambda: fake.looks >= 7)
        fake.leader, fake.timeline = "db3", 3  # seen by a later run, against the carried look
        await until(lambda: len(fake.post_failovers) == 1)
        latest = env.client.get_workflow_handle(guardian_id(spec.cluster))
        described = await latest.describe()
        view = await stop(latest)
    assert described.run_id != first_run
    assert described.status == WorkflowExecutionStatus.RUNNING
    assert view.looks >= 8 and view.recent[0].event.kind is EventKind.leader_changed
    history = [e async for e in latest.fetch_history_events()]
    assert len(history) < 120  # one run's history stays small


async def test_a_change_while_the_worker_is_down_is_seen_after_it_comes_back(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake, queue = FakeCluster(), f"guard-{uuid.uuid4()}"
    async with worker(env, fake, queue):
        handle = await start(env, spec, queue)
        await until(lambda: fake.looks >= 2)
    # No worker: the failover happens while nobody looks.
    fake.leader, fake.timeline = "db2", 3
    await asyncio.sleep(1.0)
    assert fake.recorded == []
    async with worker(env, fake, queue):
        await until(lambda: len(fake.post_failovers) == 1)
        view = await stop(handle)
    assert view.recent[0].event.kind is EventKind.leader_changed


async def test_a_post_failover_waits_for_the_lock_and_starts_once_it_is_free(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake, queue = FakeCluster(), f"guard-{uuid.uuid4()}"
    fake.busy_for = 2  # a scheduled backup holds the lock for two more looks
    async with worker(env, fake, queue):
        handle = await start(env, spec, queue)
        await until(lambda: fake.looks >= 1)
        fake.leader, fake.timeline = "db2", 3
        await until(lambda: len(fake.post_failovers) == 1)
        view = await stop(handle)
    done = view.recent[0].done
    assert done[0] == "alert: sent: 204"
    assert done[1].startswith("post_failover: waiting for the cluster's lock (busy:")
    assert done[2] == "post_failover: started pgha-op:lab" and len(done) == 3
