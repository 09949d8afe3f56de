"""The drill probe: what an application sees during a drill. A writer inserts numbered rows
through the read-write endpoint at a steady rate, logging each outcome as the client knows
it; a reader queries the read-only endpoint; when the workflow says the drill is over, the
table is read back through the read-write endpoint. The verdict is computed from that log
(pgha.checks.probe_verdict), not from the cluster's own account.

It runs on the worker with psycopg, through the same endpoints as applications (the VIP's
HAProxy ports, or the multi-host URIs of the bare-minimum layout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import psycopg
from psycopg import errors as pg_errors
from temporalio import activity

from pgha.activities.cluster_secrets import resolve_one
from pgha.drill_models import Outcome, ProbeInput, ProbeLog, ReadAttempt, WriteAttempt
from pgha.render.postgres import SUPERUSER, connection_strings

#: Each statement's bound; longer is an outage as far as an application is concerned.
STATEMENT_S = 3.0
CONNECT_S = 2
READBACK_S = 120.0
TABLE = """
CREATE SCHEMA IF NOT EXISTS pgha;
CREATE TABLE IF NOT EXISTS pgha.drill_probe (
    run text NOT NULL,
    seq bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE pgha.drill_probe IS
    'pgha failover drills: numbered inserts of each run (no key, so duplicates show)';
DELETE FROM pgha.drill_probe WHERE at < now() - interval '7 days';
"""
# A statement past STATEMENT_S is cancelled on purpose; psycopg logs a warning each time its
# cancel request cannot reach a server that is gone, which is what a drill is about. The
# probe records the outcome itself; keep those warnings out of the operator's terminal.
logging.getLogger("psycopg").setLevel(logging.ERROR)

#: SQLSTATE classes that mean the statement certainly did not commit.
DEFINITE = ("25", "42", "23", "22", "28", "3D")


class _Endpoint:
    """One reconnecting autocommit connection."""

    def __init__(self, conninfo: str, password: str) -> None:
        self.conninfo, self.password = conninfo, password
        self.conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self.conn is None or self.conn.closed:
            self.conn = await psycopg.AsyncConnection.connect(
                self.conninfo, user=SUPERUSER, password=self.password, autocommit=True,
                connect_timeout=CONNECT_S, application_name="pgha-drill-probe",
            )  # fmt: skip
        return self.conn

    async def drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.conn.close(), 1)
        self.conn = None


def _classify(err: BaseException, sent: bool) -> tuple[Outcome, str]:
    """A failed insert: certainly not committed, or unknown (the connection broke after the
    statement left)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if not sent:
        return Outcome.failed, text
    state = getattr(getattr(err, "diag", None), "sqlstate", None) or ""
    if isinstance(err, pg_errors.Error) and state[:2] in DEFINITE:
        return Outcome.failed, text
    return Outcome.unknown, text


class Probe:
    def __init__(self, inp: ProbeInput, password: str) -> None:
        urls = connection_strings(inp.spec)
        self.inp = inp
        self.rw = _Endpoint(urls.read_write, password)
        self.ro = _Endpoint(urls.read_only, password)
        self.t0 = time.monotonic()
        self.log = ProbeLog(run=inp.run, started_at=datetime.now(UTC))
        self.writes: list[WriteAttempt] = []
        self.reads: list[ReadAttempt] = []
        self.stop = asyncio.Event()

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 4)

    async def prepare(self) -> None:
        """The probe table exists (retried for a while: the drill starts on a healthy cluster)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = await self.rw.connect()
                await conn.execute(TABLE)
                return
            except psycopg.Error:
                await self.rw.drop()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)

    async def write_one(self, seq: int) -> None:
        sent_at, sent = self.now(), False
        try:
            conn = await self.rw.connect()
            sent = True
            await asyncio.wait_for(
                conn.execute("INSERT INTO pgha.drill_probe (run, seq) VALUES (%s, %s)",
                             (self.inp.run, seq)),
                STATEMENT_S,
            )  # fmt: skip
            outcome, error = Outcome.ok, ""
        except (psycopg.Error, OSError, TimeoutError) as err:
            outcome, error = _classify(err, sent)
            await self.rw.drop()
        self.writes.append(
            WriteAttempt(seq=seq, sent=sent_at, done=self.now(), outcome=outcome, error=error)
        )

    async def read_one(self, _: int) -> None:
        at = self.now()
        try:
            conn = await self.ro.connect()
            await asyncio.wait_for(conn.execute("SELECT 1"), STATEMENT_S)
            self.reads.append(ReadAttempt(at=at, ok=True))
        except (psycopg.Error, OSError, TimeoutError) as err:
            self.reads.append(ReadAttempt(at=at, ok=False, error=str(err).strip()[:200]))
            await self.ro.drop()

    async def loop(self, work: Callable[[int], Awaitable[None]], every: float) -> None:
        """``work(1)``, ``work(2)``... every ``every`` seconds until told to stop; a slow
        call delays the next one instead of piling calls up."""
        seq = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            seq += 1
            await work(seq)
            next_at = max(next_at + every, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), next_at - time.monotonic())

    async def watch_workflow(self) -> None:
        """Stop when the workflow's `probe_done` query says so, or at max_s."""
        handle = activity.client().get_workflow_handle(self.inp.workflow_id)
        while not self.stop.is_set():
            activity.heartbeat(len(self.writes))
            if time.monotonic() - self.t0 > self.inp.max_s:
                break
            with contextlib.suppress(Exception):  # a query can fail while a worker restarts
                if await handle.query("probe_done", result_type=bool):
                    break
            await asyncio.sleep(0.5)
        self.stop.set()

    async def read_back(self) -> None:
        """Every row of this run, through the read-write endpoint once it answers."""
        deadline = time.monotonic() + READBACK_S
        while True:
            activity.heartbeat("reading back")
            try:
                conn = await self.rw.connect()
                cur = await conn.execute(
                    "SELECT seq, count(*) FROM pgha.drill_probe WHERE run = %s GROUP BY seq",
                    (self.inp.run,),
                )
                self.log = self.log.model_copy(
                    update={"present": {int(s): int(n) for s, n in await cur.fetchall()}}  # type: ignore[call-overload]
                )
                return
            except (psycopg.Error, OSError) as err:
                await self.rw.drop()
                if time.monotonic() > deadline:
                    self.log = self.log.model_copy(update={"readback_error": str(err).strip()})
                    return
                await asyncio.sleep(1)


@activity.defn(name="drill.probe")
async def probe(inp: ProbeInput) -> ProbeLog:
    """Write and read through the cluster's endpoints until the drill is over; then read
    the rows back. A probe restarted after a lost worker starts a fresh log (the drill
    report says the measurement covers only part of the drill)."""
    password = resolve_one(inp.spec, "superuser").get_secret_value()
    p = Probe(inp, password)
    await p.prepare()
    every = 1.0 / inp.rate
    try:
        await asyncio.gather(
            p.loop(p.write_one, every), p.loop(p.read_one, every), p.watch_workflow()
        )
        await p.read_back()
    finally:
        await p.rw.drop()
        await p.ro.drop()
    return p.log.model_copy(update={"writes": p.writes, "reads": p.reads})
