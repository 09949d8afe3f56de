"""The pgha worker: every workflow and activity on one task queue; stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.worker import Worker

from pgha.activities import (
    archiving,
    backup,
    drill,
    etcd,
    guardian,
    haproxy,
    keepalived,
    packages,
    patroni,
    pgbackrest,
    pgbouncer,
    postgres,
    probe,
    reconfigure,
    reports,
    restore_verify,
    rolling,
    status,
    topology,
)
from pgha.activities.cluster_lock import describe_lock
from pgha.activities.preflight import check_host
from pgha.hosts.host import close_all
from pgha.workflows.backup import Backup
from pgha.workflows.backups_view import BackupsView
from pgha.workflows.drill import Drill
from pgha.workflows.etcd_membership import EtcdAdd, EtcdRemove
from pgha.workflows.etcd_upgrade import EtcdUpgrade
from pgha.workflows.guardian import Guardian
from pgha.workflows.patroni_upgrade import PatroniUpgrade
from pgha.workflows.pgbackrest_upgrade import PgbackrestUpgrade
from pgha.workflows.post_failover import PostFailover
from pgha.workflows.preflight import Preflight
from pgha.workflows.provision import Provision
from pgha.workflows.proxy_upgrade import ProxyUpgrade
from pgha.workflows.reconfigure import Reconfigure
from pgha.workflows.scheduled import ScheduledRun
from pgha.workflows.status import ClusterStatusWorkflow
from pgha.workflows.switchover import Switchover
from pgha.workflows.topology import AddNode, RemoveNode
from pgha.workflows.upgrade import Upgrade
from pgha.workflows.verify_restore import VerifyRestore

WORKFLOWS: list[type] = [
    Preflight,
    Provision,
    ClusterStatusWorkflow,
    Backup,
    VerifyRestore,
    BackupsView,
    ScheduledRun,
    Drill,
    Upgrade,
    Reconfigure,
    Switchover,
    AddNode,
    RemoveNode,
    EtcdAdd,
    EtcdRemove,
    ProxyUpgrade,
    PatroniUpgrade,
    EtcdUpgrade,
    PgbackrestUpgrade,
    Guardian,
    PostFailover,
]
ACTIVITIES: list[Callable[..., Any]] = [
    check_host,
    status.patroni_status,
    status.etcd_status,
    status.proxy_status,
    status.backup_status,
    packages.ensure_host,
    etcd.read_state,
    etcd.ensure_member,
    etcd.check_cluster,
    etcd.add_member,
    etcd.remove_member,
    etcd.retire_member,
    etcd.restart_member,
    etcd.member_versions,
    etcd.hand_off_leadership,
    guardian.observe,
    guardian.record,
    guardian.start_post_failover,
    guardian.ensure_running,
    patroni.ensure_config,
    patroni.ensure_release,
    patroni.running_version,
    patroni.start_member,
    patroni.wait_leader,
    patroni.wait_replicas,
    haproxy.ensure_config,
    keepalived.ensure_config,
    keepalived.check_vip,
    pgbouncer.ensure_config,
    pgbackrest.ensure_keypair,
    pgbackrest.ensure_trust,
    pgbackrest.ensure_tls,
    pgbackrest.ensure_config,
    pgbackrest.ensure_stanza,
    pgbackrest.ensure_first_backup,
    postgres.ensure_app,
    postgres.verify_end_to_end,
    backup.list_sets,
    backup.check_archiving,
    archiving.release_stale_ready,
    backup.take,
    backup.expire,
    restore_verify.write_sentinel,
    restore_verify.check_repository,
    restore_verify.restore,
    restore_verify.prove,
    restore_verify.teardown,
    reports.save_backup,
    reports.save_verification,
    reports.latest_verification,
    describe_lock,
    probe.probe,
    drill.switchover,
    drill.kill_postgres,
    drill.wait_leader,
    drill.watch_failover,
    drill.patroni_history,
    drill.reinit_diverged,
    drill.release_stuck_leader,
    drill.set_aside_dead_timelines,
    drill.wait_healthy,
    drill.systemctl,
    drill.wait_vip,
    drill.power,
    drill.partition,
    drill.signal,
    reports.save_drill,
    rolling.resolve_versions,
    rolling.gate_long_transactions,
    rolling.set_drained,
    rolling.install,
    rolling.restart,
    rolling.switchover,
    rolling.restart_units,
    rolling.package_versions,
    rolling.set_pause,
    rolling.restart_patroni,
    rolling.versions,
    reports.save_upgrade,
    reports.save_reconfigure,
    reconfigure.plan,
    reconfigure.apply_dcs,
    reconfigure.pending_restarts,
    reconfigure.restart_pending,
    topology.retire_member,
    topology.wait_member_gone,
]

#: Identity prefix of the short-lived worker a CLI command runs while it waits.
IN_PROCESS_PREFIX = "pgha-cli-worker@"
GRACEFUL_SHUTDOWN = timedelta(seconds=30)
HEARTBEAT_THROTTLE = timedelta(seconds=2)
IN_PROCESS_GRACEFUL_SHUTDOWN = timedelta(seconds=3)
#: A live worker re-polls at least every ~60 s (the server's long-poll timeout); a poller
#: seen longer ago than this is a worker that died, which the server lists for minutes.
LIVE_POLLER_WINDOW = timedelta(seconds=75)


def build_worker(
    client: Client,
    task_queue: str,
    *,
    identity: str | None = None,
    workflows: Sequence[type] = WORKFLOWS,
    activities: Sequence[Callable[..., Any]] = ACTIVITIES,
    **options: Any,
) -> Worker:
    """A worker for all of pgha's workflows and activities (or the given ones, in tests)."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=list(activities),
        identity=identity or f"pgha-worker@{socket.gethostname()}:{os.getpid()}",
        graceful_shutdown_timeout=options.pop("graceful_shutdown_timeout", GRACEFUL_SHUTDOWN),
        max_concurrent_activities=options.pop("max_concurrent_activities", 50),
        # A cancellation reaches an activity only in a heartbeat's reply; the SDK sends
        # them at most every 0.8 x heartbeat timeout (48 s for an hour-long restore). A
        # cancelled restore must stop before its scratch copy is removed: beat often.
        max_heartbeat_throttle_interval=options.pop(
            "max_heartbeat_throttle_interval", HEARTBEAT_THROTTLE
        ),
        **options,
    )


async def run_worker(client: Client, task_queue: str) -> None:
    """Run until SIGTERM or SIGINT, then let running activities finish (up to 30 s)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = build_worker(client, task_queue)
    async with worker:
        await stop.wait()
    await close_all()


async def worker_polling(client: Client, task_queue: str) -> bool:
    """Whether a long-lived worker polls the queue. In-process CLI workers do not count:
    they go away with their command, and the server remembers pollers for minutes."""
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    now = datetime.now(UTC)
    return any(
        not p.identity.startswith(IN_PROCESS_PREFIX)
        and now - p.last_access_time.ToDatetime(tzinfo=UTC) < LIVE_POLLER_WINDOW
        for p in resp.pollers
    )


@asynccontextmanager
async def in_process_worker(client: Client, task_queue: str) -> AsyncIterator[None]:
    """Run a worker inside this (CLI) process while the body runs."""
    worker = build_worker(
        client,
        task_queue,
        identity=f"{IN_PROCESS_PREFIX}{socket.gethostname()}:{os.getpid()}",
        # A later worker should pick up this one's workflows at once, not after 10 s.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=2),
        # The command is over when this exits; what still runs is retried by a later worker.
        graceful_shutdown_timeout=IN_PROCESS_GRACEFUL_SHUTDOWN,
    )
    async with worker:
        yield
    await close_all()


@asynccontextmanager
async def in_process_worker_if_needed(client: Client, task_queue: str) -> AsyncIterator[bool]:
    """Run a worker inside this process while the body runs, unless another worker polls.

    :returns: (as the context value) whether an in-process worker runs.
    """
    if await worker_polling(client, task_queue):
        yield False
        return
    async with in_process_worker(client, task_queue):
        yield True
