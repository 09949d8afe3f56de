"""Activities of add-node and remove-node that provision does not have: retire a member
(Patroni stopped and disabled, data kept), and wait until the cluster has forgotten it
(no member key, no replication slot on the leader)."""

from __future__ import annotations

import asyncio
import time

from temporalio import activity

from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import param, permanent
from pgha.activities.patroni import api_url
from pgha.hosts.facts import patroni as facts
from pgha.hosts.facts.patroni import psql
from pgha.hosts.ops import patroni as ops
from pgha.hosts.ops.patroni import PATRONI_UNIT
from pgha.steps import HostStep, StepResult

WATCH_UNIT = "pgha-postmaster-watch.service"


@activity.defn(name="topology.retire_member")
async def retire_member(step: HostStep) -> StepResult:
    """Stop and disable Patroni (which stops PostgreSQL) and the postmaster watcher on
    ``step.host``. Its data directory stays: removing a node never deletes data.
    Idempotent."""
    async with heartbeating(), open_host(step.target) as host:
        await host.run(["systemctl", "disable", "--now", PATRONI_UNIT, WATCH_UNIT],
                       label="systemctl disable --now", timeout=180)  # fmt: skip
    return StepResult(host=step.host, changed=True,
                      summary=f"Patroni stopped and disabled on {step.host}; data kept in "
                              f"{step.spec.postgres.data_path}")  # fmt: skip


@activity.defn(name="topology.wait_member_gone")
async def wait_member_gone(step: HostStep) -> StepResult:
    """Wait until Patroni's view (from ``step.host``, a remaining member) no longer lists
    ``params["member"]`` (its key expires within ttl) and the leader holds no replication
    slot for it. Read-only.

    :raises ApplicationError: MemberStillThere (non-retryable) after ttl x 3 + 30 s.
    """
    gone = param(step, "member")
    spec = step.spec
    within = spec.patroni.ttl * 3 + 30
    deadline = time.monotonic() + within
    seen = ""
    async with heartbeating(), open_host(step.target) as host:
        while time.monotonic() < deadline:
            found = await facts.cluster(host, api_url(spec, step.host))
            members = [] if isinstance(found, str) else found
            leader = ops.leader_of(members)
            listed = any(m.name == gone for m in members)
            slots = ""
            if leader is not None and not listed:
                async with open_host(spec.target(leader.name)) as lh:
                    sql = "SELECT slot_name FROM pg_catalog.pg_replication_slots"
                    out = await lh.run(psql(spec.postgres.port, sql), label="psql slots")
                    slots = out.stdout
            if leader is not None and not listed and gone not in slots.split():
                why = f"{gone} is gone: no member key, no slot on {leader.name}"
                return StepResult(host=step.host, changed=False, summary=why)
            seen = (found if isinstance(found, str) else
                    f"{'still listed' if listed else 'slot left on the leader'}")  # fmt: skip
            await asyncio.sleep(2)
    raise permanent(f"{gone} is still part of cluster {spec.cluster} after {within} s ({seen})",
                    "MemberStillThere")  # fmt: skip
