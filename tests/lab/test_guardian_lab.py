"""The guardian on the provisioned lab, with a webhook receiver of the test's own.

Host loss: the primary's host is powered off with the guardian running. The guardian must
see the leader change, an alert must reach the receiver, and PostFailover must run by
itself: the old primary (powered on again, as an operator would) rejoins, and a backup
appears in the repository on the new timeline (checked with `pgbackrest info` and
patronictl, not from pgha's report). A drill's switchover while the guardian runs is
logged, not alerted on, and starts nothing. A replica's Patroni stopped while the
guardian's worker is down is seen, and alerted on, once a new worker runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from temporalio.service import RPCError

from pgha.drill_models import DrillInput, Scenario
from pgha.event_kinds import EventKind
from pgha.event_models import GuardianView, PostFailoverReport
from pgha.guardian_control import guardian_view, start_guardian, stop_guardian
from pgha.lab.hosts import lab_power
from pgha.operations import DRILL, guardian_id, lock_id
from pgha.spec import ClusterSpec, GuardianSettings, Role
from pgha.worker import build_worker
from tests.lab.backup_helpers import Lab, info, psql, sh
from tests.lab.drill_helpers import leader, patroni_members
from tests.webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.lab


@pytest_asyncio.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as r:
        yield r


def guarded(spec: ClusterSpec, url: str) -> ClusterSpec:
    g = GuardianSettings.model_validate({**spec.guardian.model_dump(), "enabled": True,
                                         "interval_s": 3.0, "webhook": url})  # fmt: skip
    return spec.model_copy(update={"guardian": g})


async def until(check: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    for _ in range(int(within)):
        if found := await check():
            return found
        await asyncio.sleep(1)
    raise AssertionError(f"{what}: not within {within:g} s")


async def test_host_loss_is_seen_alerted_and_followed_by_a_backup_on_the_new_timeline(
    lab_cluster: Lab, receiver: Receiver
) -> None:
    spec = guarded(lab_cluster.spec, receiver.url)
    client = lab_cluster.env.client
    await start_guardian(client, spec, lab_cluster.task_queue)
    old = await leader()
    try:

        async def looked() -> bool:
            return (await guardian_view(client, spec.cluster)).looks >= 2

        await until(looked, 60, "two looks")
        await lab_power(old, False)

        async def alerted() -> bool:
            return EventKind.leader_changed.value in receiver.kinds()

        try:
            await until(alerted, 120, "the leader change alerted")
        except AssertionError:
            view = await guardian_view(client, spec.cluster)
            raise AssertionError(
                f"no leader_changed alert; received {receiver.bodies}; the "
                f"guardian: {view.model_dump_json()}"
            ) from None
        await lab_power(old, True)  # the operator brings the host back; it must rejoin

        async def started() -> str:
            view = await guardian_view(client, spec.cluster)
            return next((d for h in view.recent for d in h.done
                         if d.startswith("post_failover: started")), "")  # fmt: skip

        said = await until(started, 30, "post-failover started by the guardian")
        assert said == f"post_failover: started {lock_id(spec.cluster)}"
        handle = client.get_workflow_handle(lock_id(spec.cluster))
        report = PostFailoverReport.model_validate(await handle.result())
    finally:
        await lab_power(old, True)
        view: GuardianView = await stop_guardian(client, spec.cluster)
    alert = next(b for b in receiver.bodies if b["kind"] == "leader_changed")
    assert alert["cluster"] == spec.cluster and alert["data"]["old_leader"] == old
    new = alert["data"]["new_leader"]
    assert new != old and report.new_leader == new and report.old_primary == "rejoined"
    # Past pgha: the new timeline from patronictl, the backup's WAL from pgbackrest info.
    timeline = int(await _leader_timeline(new))
    sets = {b["label"]: b for b in (await info(lab_cluster))["backup"]}
    backup = sets[report.backup_label]
    assert backup["type"] == "incr" and int(backup["archive"]["start"][:8], 16) == timeline
    assert report.verified is True, report.verify_reason
    kinds = [h.event.kind for h in view.recent]
    assert EventKind.leader_changed in kinds and EventKind.member_down in kinds


async def test_a_drills_failover_is_not_an_incident(lab_cluster: Lab, receiver: Receiver) -> None:
    spec = guarded(lab_cluster.spec, receiver.url)
    client = lab_cluster.env.client
    await start_guardian(client, spec, lab_cluster.task_queue)
    alerts_before = len(receiver.bodies)
    try:

        async def looked() -> bool:
            return (await guardian_view(client, spec.cluster)).looks >= 2

        await until(looked, 60, "two looks")
        old = await leader()
        await lab_cluster.run(DRILL, DrillInput(spec=lab_cluster.spec, scenario=Scenario.switchover,
                                                settle_s=2))  # fmt: skip
        assert await leader() != old

        async def logged() -> GuardianView | None:
            view = await guardian_view(client, spec.cluster)
            seen = [h for h in view.recent if h.event.kind is EventKind.leader_changed]
            return view if seen else None

        view = await until(logged, 60, "the drill's leader change logged")
        await asyncio.sleep(8)  # a few more looks: still nothing else
    finally:
        await stop_guardian(client, spec.cluster)
    change = next(h for h in view.recent if h.event.kind is EventKind.leader_changed)
    assert change.event.during == "drill", change
    assert not any(d.startswith("post_failover") for d in change.done), change.done
    assert receiver.bodies[alerts_before:] == []  # nothing was alerted


async def test_a_change_while_the_worker_is_down_is_seen_when_a_worker_is_back(
    lab_cluster: Lab, receiver: Receiver
) -> None:
    spec = guarded(lab_cluster.spec, receiver.url)
    client = lab_cluster.env.client
    queue = f"guard-{uuid.uuid4()}"  # a worker of its own, which the test takes away
    primary = await leader()
    replica = next(h.name for h in spec.hosts_with(Role.postgres) if h.name != primary)
    alerts_before = len(receiver.bodies)
    try:
        async with build_worker(client, queue):
            await start_guardian(client, spec, queue)

            async def looked() -> bool:
                return (await guardian_view(client, spec.cluster)).looks >= 2

            await until(looked, 60, "two looks")
            looks = (await guardian_view(client, spec.cluster)).looks
        # No worker polls the guardian's queue now: nothing looks at the cluster (and
        # nothing answers a query either).
        await sh(replica, "systemctl stop patroni")
        await asyncio.sleep(3 * spec.guardian.interval_s)
        assert receiver.bodies[alerts_before:] == []
        async with build_worker(client, queue):

            async def alerted() -> list[dict[str, Any]]:
                return [b for b in receiver.bodies[alerts_before:] if b["kind"] == "member_down"]

            bodies = await until(alerted, 60, "the member_down alert after the worker came back")
            view = await guardian_view(client, spec.cluster)
            await sh(replica, "systemctl start patroni")

            async def back() -> bool:
                seen = (await guardian_view(client, spec.cluster)).recent
                return any(h.event.kind is EventKind.member_back for h in seen)

            await until(back, 90, "the member seen back")
            await stop_guardian(client, spec.cluster)
    finally:
        await sh(replica, "systemctl start patroni")
        # A guardian left on this test's queue (a failure above) would hold its id for the
        # next test's start_guardian with no worker to answer.
        with contextlib.suppress(RPCError):
            await client.get_workflow_handle(guardian_id(spec.cluster)).terminate("test ended")
    assert view.looks > looks
    assert bodies[0]["subject"] == replica and bodies[0]["cluster"] == spec.cluster, bodies[0]

    async def streaming() -> bool:
        members = await patroni_members()
        return members[replica]["State"] in ("running", "streaming")  # 3.0.2 says running

    await until(streaming, 90, f"{replica} running again")


async def _leader_timeline(host: str) -> str:
    """The timeline the leader writes WAL on (its current segment's first eight digits)."""
    wal = await psql(host, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    return str(int(wal[:8], 16))
