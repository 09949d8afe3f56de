"""The Guardian on the real dev server with a fake cluster to look at: a quiet cluster makes
no event; a failover is alerted on and starts post-failover; a drill's own failover is
logged only; an event sent in is handled at once; the run continues as new with its state;
a worker that dies loses no event; a stop ends it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from pgha.event_kinds import EventKind
from pgha.event_models import (
    ExternalEvent,
    GuardianView,
)
from pgha.operations import guardian_id
from pgha.spec import ClusterSpec
from tests.workflows.guardian_fakes import FakeCluster, start, until, worker


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


async def test_a_failover_seen_through_a_look_without_a_leader_is_still_a_leader_change(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake, queue = FakeCluster(), f"guard-{uuid.uuid4()}"
    async with worker(env, fake, queue):
        handle = await start(env, spec, queue)
        await until(lambda: fake.looks >= 2)
        fake.leader, fake.down = "", "db1"  # the old leader's key expired; none elected yet
        looks = fake.looks
        await until(lambda: fake.looks >= looks + 2)
        fake.leader, fake.timeline = "db2", 3
        await until(lambda: len(fake.post_failovers) == 1)
        await stop(handle)
    started = fake.post_failovers[0].inp
    assert (started.old_leader, started.new_leader) == ("db1", "db2")
