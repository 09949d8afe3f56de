"""The guardian's activities: one look at the cluster, an alert, and starting a reaction's
operation. Thin: the parts are read by the status activities' own functions, the events
derived by pgha.checks.cluster_events (in the workflow), the lock is pgha.operations'.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from opentelemetry import trace
from temporalio import activity
from temporalio.client import Client

from pgha.activities.common import heartbeating, open_host
from pgha.activities.reports import latest_verification
from pgha.activities.status import backup_status, etcd_status, patroni_status, proxy_status
from pgha.checks.cluster_events import leader
from pgha.errors import ClusterBusy, HostError, PghaError
from pgha.event_models import (
    Archiver,
    ClusterEvent,
    Observation,
    ObserveInput,
    PostFailoverStart,
    RecordInput,
    VerificationSeen,
)
from pgha.guardian_control import start_guardian
from pgha.hosts.facts.patroni import psql
from pgha.operations import OPERATIONS, POST_FAILOVER, start_operation
from pgha.search_attributes import OPERATION_ATTR
from pgha.spec import ClusterSpec, Role
from pgha.status_models import ClusterStatus, Unreadable
from pgha.steps import HostStep, StepResult

log = logging.getLogger("pgha.guardian")
T = TypeVar("T")

#: pg_stat_archiver with times as epoch seconds (no time-zone parsing), tab-separated.
ARCHIVER_SQL = (
    "SELECT archived_count, failed_count, coalesce(extract(epoch FROM last_archived_time), 0),"
    " coalesce(extract(epoch FROM last_failed_time), 0), coalesce(last_failed_wal, '')"
    " FROM pg_catalog.pg_stat_archiver"
)
WEBHOOK_TIMEOUT_S = 10.0


async def _first(part: str, hosts: Sequence[str], spec: ClusterSpec, status: ClusterStatus,
                 read: Callable[[HostStep], Awaitable[T]]) -> T | None:  # fmt: skip
    """The first host that answers; each failure is listed in ``status.unreadable``."""
    for host in hosts:
        try:
            return await read(HostStep(spec=spec, host=host))
        except Exception as err:  # a part that does not answer is reported, never fatal
            status.unreadable.append(Unreadable(part=part, host=host, error=str(err)[:300]))
    return None


def parse_archiver(stdout: str) -> Archiver | None:
    """One row of :data:`ARCHIVER_SQL`. Pure."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    # Only newlines are stripped: the last field (last_failed_wal) is often empty.
    fields = lines[0].split("\t") if lines else []
    if len(fields) != 5:
        return None

    def at(epoch: str) -> datetime | None:
        seconds = float(epoch)
        return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None

    return Archiver(archived_count=int(fields[0]), failed_count=int(fields[1]),
                    last_archived_at=at(fields[2]), last_failed_at=at(fields[3]),
                    last_failed_wal=fields[4])  # fmt: skip


async def _archiver(spec: ClusterSpec, primary: str) -> Archiver | None:
    try:
        async with open_host(spec.target(primary)) as host:
            out = await host.run(psql(spec.postgres.port, ARCHIVER_SQL), label="psql",
                                 timeout=10)  # fmt: skip
    except (HostError, PghaError):
        return None
    return parse_archiver(out.stdout)


async def _verification(spec: ClusterSpec) -> VerificationSeen | None:
    try:
        report = await latest_verification(spec.cluster)
    except Exception:  # an unreadable store is `pgha report`'s to explain, not an event
        return None
    if report is None:
        return None
    return VerificationSeen(passed=report.passed, finished_at=report.finished_at,
                            reason=report.reason)  # fmt: skip


async def operations_on(client: Client, cluster: str, since: datetime | None) -> str:
    """The disruptive pgha operations (a drill, an upgrade, a switchover...; not a backup)
    running on ``cluster``, or that ended after ``since`` (Temporal's visibility: the
    PghaCluster and PghaOperation search attributes)."""
    ended = f' OR CloseTime > "{since.isoformat()}"' if since else ""
    query = f'PghaCluster = "{cluster}" AND (ExecutionStatus = "Running"{ended})'
    names: set[str] = set()
    async for wf in client.list_workflows(query):
        op = wf.typed_search_attributes.get(OPERATION_ATTR)
        if op and op in OPERATIONS and OPERATIONS[op].mutating and OPERATIONS[op].disruptive:
            names.add(op)
    return ", ".join(sorted(names))


@activity.defn(name="guardian.observe")
async def observe(inp: ObserveInput) -> Observation:
    """One look at the cluster: Patroni, etcd, each proxy, the backup repository, the
    primary's archiver, the newest restore verification, and the pgha operations running
    (or ended since the last look). Read-only; a part that does not answer is left out and
    listed, never guessed."""
    spec = inp.spec
    at = datetime.now(UTC)
    status = ClusterStatus(cluster=spec.cluster)
    names = {r: [h.name for h in spec.hosts_with(r)] for r in Role}
    async with heartbeating():
        # Each part from the first of its hosts that answers, all parts at once.
        patroni_t = asyncio.create_task(
            _first("patroni", names[Role.postgres], spec, status, patroni_status)
        )
        etcd_t = asyncio.create_task(_first("etcd", names[Role.etcd], spec, status, etcd_status))
        backups_t = asyncio.create_task(
            _first(
                "backups",
                names[Role.backup_repo] if spec.backup.enabled else [],
                spec,
                status,
                backup_status,
            )
        )
        proxies = await asyncio.gather(
            *(_first("proxy", [p], spec, status, proxy_status) for p in names[Role.haproxy])
        )
        patroni, etcd, backups = await patroni_t, await etcd_t, await backups_t
        status = status.model_copy(
            update={
                "patroni": patroni,
                "etcd": etcd,
                "backups": backups,
                "proxies": [p for p in proxies if p is not None],
            }
        )
        primary = leader(patroni)
        archiver = (
            await _archiver(spec, primary.name)
            if primary is not None and spec.backup.enabled
            else None
        )
        verification = await _verification(spec)
        operation = await operations_on(activity.client(), spec.cluster, inp.since)
    return Observation(at=at, status=status, archiver=archiver, verification=verification,
                       operation=operation)  # fmt: skip


def event_body(spec: ClusterSpec, event: ClusterEvent) -> dict[str, Any]:
    """The JSON an alert posts: the event, and which cluster it is about."""
    return {"cluster": spec.cluster, **event.model_dump(mode="json")}


@activity.defn(name="guardian.record")
async def record(inp: RecordInput) -> str:
    """Log the event and add it to the current trace as a span event; with ``send``, POST
    it as JSON to the spec's webhook too. A webhook that refuses or does not answer is
    retried by Temporal a few times; then the guardian records the failure and goes on.

    :returns: what happened ("sent: 204", "logged").
    """
    event = inp.event
    trace.get_current_span().add_event(
        f"pgha.event.{event.kind.value}",
        {"cluster": inp.spec.cluster, "subject": event.subject, "detail": event.detail,
         "source": event.source, "during": event.during},
    )  # fmt: skip
    log.warning("cluster %s: %s %s: %s%s", inp.spec.cluster, event.kind.value, event.subject,
                event.detail, f" (during {event.during})" if event.during else "")  # fmt: skip
    url = inp.spec.guardian.webhook
    if not inp.send:
        return "logged"
    if url is None:
        return "logged (no webhook in the spec)"
    async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S) as client:
        response = await client.post(str(url), json=event_body(inp.spec, event))
    if response.status_code >= 300:
        raise RuntimeError(f"webhook {url} answered {response.status_code}: "
                           f"{response.text[:200]}")  # fmt: skip
    return f"sent: {response.status_code}"


@activity.defn(name="guardian.start_post_failover")
async def start_post_failover(inp: PostFailoverStart) -> str:
    """Start PostFailover on the cluster, under the cluster's lock like any operation.

    :returns: "started <workflow id>", or "busy: <what holds the lock>": never an error,
        the guardian records it and does not push a mutation past another operation. A
        retry after a lost worker finds its own run holding the lock and says busy.
    """
    try:
        handle = await start_operation(activity.client(), POST_FAILOVER, inp.inp.spec.cluster,
                                       inp.inp, task_queue=inp.task_queue)  # fmt: skip
    except ClusterBusy as busy:
        return f"busy: {busy}"
    return f"started {handle.id}"


@activity.defn(name="guardian.ensure_running")
async def ensure_running(step: HostStep) -> StepResult:
    """The cluster's guardian runs (started on this worker's task queue, or handed the
    spec when it runs already). Idempotent."""
    wf, started = await start_guardian(activity.client(), step.spec,
                                       activity.info().task_queue)  # fmt: skip
    said = (
        f"started the guardian ({wf})" if started else f"the guardian runs ({wf}); spec handed over"
    )
    return StepResult(host=step.host, changed=started, summary=said, facts={"workflow_id": wf})
