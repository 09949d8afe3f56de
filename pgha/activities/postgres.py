"""SQL-level activities: application roles and databases, and the end-to-end check."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
from opentelemetry import trace
from pydantic import SecretStr
from temporalio import activity

from pgha import secrets
from pgha.activities.cluster_secrets import resolve_one
from pgha.activities.common import heartbeating, open_host
from pgha.hosts.ops.app import (
    WantedDatabase,
    WantedRole,
    ensure_databases,
    ensure_roles,
    literal,
    query_rows,
)
from pgha.models import SecretRef
from pgha.render.postgres import SUPERUSER
from pgha.spec import ClusterSpec, Role
from pgha.steps import HostStep, StepResult

tracer = trace.get_tracer("pgha.sql")

#: How long a row written through the read-write port may take to show on a replica.
REPLICATION_WAIT_S = 30.0


def role_password(spec: ClusterSpec, name: str, ref: SecretRef | None) -> SecretStr:
    """An application role's password: the spec's reference, or generated in the store."""
    return secrets.resolve(ref or SecretRef(secret=f"{spec.cluster}-role-{name}"), generate=True)


@activity.defn(name="postgres.ensure_app")
async def ensure_app(step: HostStep) -> StepResult:
    """Roles, then databases (owners must exist first), on the primary. Idempotent."""
    spec = step.spec
    roles = [
        WantedRole(
            name=r.name,
            login=r.login,
            password=role_password(spec, r.name, r.password) if r.login else None,
            member_of=r.member_of,
        )
        for r in spec.roles
    ]
    dbs = [WantedDatabase(name=d.name, owner=d.owner, extensions=d.extensions)
           for d in spec.databases]  # fmt: skip
    async with heartbeating(), open_host(step.target) as host:
        (row,) = await query_rows(host, "SELECT pg_catalog.pg_is_in_recovery()")
        if row[0] == "t":
            # The leader moved since the workflow asked; a retry goes to the same host, so
            # say it plainly rather than write nothing.
            raise RuntimeError(
                f"host {step.host} is a replica now; roles are created on the primary"
            )
        r = await ensure_roles(host, roles)
        d = await ensure_databases(host, dbs)
    changed = r.changed or d.changed
    summary = "; ".join(o.summary for o in (r, d))
    return StepResult(host=step.host, changed=changed, summary=summary)


async def _connect(
    host: str, port: int, password: SecretStr
) -> psycopg.AsyncConnection[tuple[object, ...]]:
    return await psycopg.AsyncConnection.connect(
        host=host,
        port=port,
        user=SUPERUSER,
        password=password.get_secret_value(),
        dbname="postgres",
        connect_timeout=5,
        autocommit=True,
        application_name="pgha-verify",
    )


def _name_of(spec: ClusterSpec, address: str) -> str:
    for h in spec.hosts:
        if str(h.address) == address:
            return h.name
    return address


@activity.defn(name="cluster.verify_end_to_end")
async def verify_end_to_end(step: HostStep) -> StepResult:
    """Write a row through the read-write path and read it back through the read-only path
    from a replica: what an application would do. Retried while the cluster settles."""
    spec = step.spec
    if spec.vip is None or not spec.hosts_with(Role.haproxy):
        return await _verify_over_ssh(step)
    vip = str(spec.vip.address.ip)
    rw, ro = spec.haproxy.rw_port, spec.haproxy.ro_port
    password = resolve_one(spec, "superuser")
    token = uuid.uuid4().hex
    async with heartbeating():
        with tracer.start_as_current_span("sql write", attributes={"pgha.target": f"{vip}:{rw}"}):
            async with await _connect(vip, rw, password) as conn:
                await conn.execute("CREATE SCHEMA IF NOT EXISTS pgha")
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS pgha.e2e_check (id bigserial PRIMARY KEY,"
                    " token text NOT NULL, written_at timestamptz NOT NULL DEFAULT now())"
                )
                cur = await conn.execute(
                    "INSERT INTO pgha.e2e_check (token) VALUES (%s)"
                    " RETURNING host(pg_catalog.inet_server_addr()),"
                    " pg_catalog.pg_is_in_recovery()",
                    (token,),
                )
                writer, writer_in_recovery = (await cur.fetchone()) or ("", True)
        if writer_in_recovery:
            raise RuntimeError(
                f"{vip}:{rw} led to a replica ({writer}); HAProxy's primary check is wrong"
            )
        deadline = asyncio.get_running_loop().time() + REPLICATION_WAIT_S
        with tracer.start_as_current_span("sql read", attributes={"pgha.target": f"{vip}:{ro}"}):
            while True:
                async with await _connect(vip, ro, password) as conn:
                    cur = await conn.execute(
                        "SELECT host(pg_catalog.inet_server_addr()),"
                        " pg_catalog.pg_is_in_recovery(),"
                        " EXISTS (SELECT 1 FROM pgha.e2e_check WHERE token = %s)",
                        (token,),
                    )
                    got = (await cur.fetchone()) or ("", False, False)
                    reader, in_recovery, seen = str(got[0]), bool(got[1]), bool(got[2])
                if in_recovery and seen:
                    break
                if asyncio.get_running_loop().time() > deadline:
                    what = "a replica" if in_recovery else f"the primary ({reader}), not a replica"
                    raise RuntimeError(
                        f"read-only port {vip}:{ro} led to {what}; the row written through "
                        f"{vip}:{rw} was {'seen' if seen else 'not seen'} there within "
                        f"{REPLICATION_WAIT_S:.0f} s"
                    )
                await asyncio.sleep(0.5)
    leader, replica = _name_of(spec, str(writer)), _name_of(spec, str(reader))
    return StepResult(
        host=step.host,
        changed=False,
        summary=(
            f"wrote through {vip}:{rw} (primary {leader}) and read it back through "
            f"{vip}:{ro} (replica {replica})"
        ),
        facts={"leader": leader, "replica": replica},
    )


async def _verify_over_ssh(step: HostStep) -> StepResult:
    """Bare-minimum layout: no VIP; write on the leader, read on every replica, over SSH."""
    spec = step.spec
    token = uuid.uuid4().hex
    async with heartbeating(), open_host(step.target) as host:
        await host.run(
            ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"],
            input=(
                "CREATE SCHEMA IF NOT EXISTS pgha;\n"
                "CREATE TABLE IF NOT EXISTS pgha.e2e_check (id bigserial PRIMARY KEY,"
                " token text NOT NULL, written_at timestamptz NOT NULL DEFAULT now());\n"
                f"INSERT INTO pgha.e2e_check (token) VALUES ({literal(token)});\n"
            ),
            label="psql",
        )
    replicas = [h.name for h in spec.hosts_with(Role.postgres) if h.name != step.host]
    for name in replicas:
        async with open_host(spec.target(name)) as host:
            deadline = asyncio.get_running_loop().time() + REPLICATION_WAIT_S
            while True:
                rows = await query_rows(
                    host,
                    "SELECT pg_catalog.pg_is_in_recovery(), EXISTS (SELECT 1 FROM"
                    f" pgha.e2e_check WHERE token = {literal(token)})",
                )
                if rows and rows[0] == ["t", "t"]:
                    break
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(
                        f"replica {name} did not show the row written on {step.host}"
                    )
                await asyncio.sleep(0.5)
    return StepResult(
        host=step.host,
        changed=False,
        summary=f"wrote on {step.host}, read back on {', '.join(replicas)}",
        facts={"leader": step.host, "replica": replicas[0] if replicas else ""},
    )
