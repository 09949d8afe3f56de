"""What the drill lab tests share: the test's own writer through the VIP, observers that
see a fault from outside pgha, and the drill run itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime

import psycopg
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from pgha.activities.cluster_secrets import resolve_one
from pgha.drill_models import DrillInput, DrillReport, Scenario
from pgha.operations import DRILL
from pgha.render.postgres import connection_strings
from pgha.spec import ClusterSpec
from tests.lab.backup_helpers import Lab, sh
from tests.lab.helpers import docker_exec


class Writer:
    """The test's own application: numbered inserts through the read-write endpoint."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.url = connection_strings(spec).read_write
        self.password = resolve_one(spec, "superuser").get_secret_value()
        self.run = f"test-{uuid.uuid4().hex[:8]}"
        self.acked: dict[int, datetime] = {}  # seq -> when its commit was acknowledged
        self.stop = asyncio.Event()

    async def connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        return await psycopg.AsyncConnection.connect(
            self.url, user="postgres", password=self.password, autocommit=True, connect_timeout=2
        )

    async def go(self) -> None:
        async with await self.connect() as c:
            await c.execute("CREATE TABLE IF NOT EXISTS public.test_writer (run text, seq int)")
        conn, seq = None, 0
        while not self.stop.is_set():
            seq += 1
            try:
                conn = conn or await self.connect()
                insert = conn.execute("INSERT INTO public.test_writer VALUES (%s, %s)",
                                      (self.run, seq))  # fmt: skip
                await asyncio.wait_for(insert, 3)
                self.acked[seq] = datetime.now(UTC)
            except (psycopg.Error, OSError, TimeoutError):
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                conn = None
            await asyncio.sleep(0.05)

    async def present(self) -> set[int]:
        async with await self.connect() as c:
            cur = await c.execute("SELECT seq FROM public.test_writer WHERE run = %s", (self.run,))
            return {int(r[0]) for r in await cur.fetchall()}  # type: ignore[call-overload]


async def patroni_members(host: str = "db1") -> dict[str, dict[str, object]]:
    out = await sh(host, "patronictl -c /etc/patroni/config.yml list -f json")
    return {m["Member"]: m for m in json.loads(out)}


async def leader() -> str:
    return next(n for n, m in (await patroni_members()).items() if m["Role"] == "Leader")


class Observer:
    """What a command printed on some hosts, every few tenths of a second, while the drill
    ran: the fault seen from outside pgha."""

    def __init__(self, hosts: list[str], command: str) -> None:
        self.hosts, self.command = hosts, command
        self.seen: dict[str, set[str]] = {h: set() for h in hosts}
        self.stop = asyncio.Event()

    async def go(self) -> None:
        while not self.stop.is_set():
            for h in self.hosts:
                _, out = await docker_exec(h, "sh", "-c", self.command)
                self.seen[h].add(out.strip())
            await asyncio.sleep(0.2)


async def drill(
    lab: Lab, scenario: Scenario, observer: Observer | None = None
) -> tuple[DrillReport, Writer]:
    writer = Writer(lab.spec)
    tasks = [asyncio.create_task(writer.go())]
    if observer is not None:
        tasks.append(asyncio.create_task(observer.go()))
    try:
        await asyncio.sleep(1)
        inp = DrillInput(spec=lab.spec, scenario=scenario, settle_s=3, hold_s=3)
        try:
            result = await lab.run(DRILL, inp)
        except WorkflowFailureError as err:  # a drill that found lost writes fails red
            cause = err.cause
            assert isinstance(cause, ApplicationError) and cause.type == "DrillFailed", err
            result = cause.details[0]
    finally:
        writer.stop.set()
        if observer is not None:
            observer.stop.set()
        await asyncio.gather(*tasks)
    return DrillReport.model_validate(result), writer


async def probe_rows(report: DrillReport) -> set[int]:
    out = await sh(
        report.new_leader,
        'runuser -u postgres -- psql -XAtc "SELECT seq FROM pgha.drill_probe WHERE run = '
        f"'{report.probe_run}'\"",
    )
    return {int(x) for x in out.split()}


async def verdict_matches_rows(report: DrillReport) -> None:
    """With asynchronous replication a fault that cuts the primary off may lose commits it
    acknowledged but had not shipped yet: the drill must say so (red, naming them), and
    its verdict must match the probe's rows as read here."""
    v = report.verdict
    assert v is not None and report.healed
    rows = await probe_rows(report)
    assert not set(v.lost) & rows and len(rows) >= v.acknowledged - len(v.lost)
    assert report.passed == v.safe
    if not report.passed:
        assert f"{len(v.lost)} lost" in report.reason


async def container_states(
    names: list[str], seen: dict[str, set[str]], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        for n in names:
            proc = await asyncio.create_subprocess_exec(
                "docker", "inspect", "-f", "{{.State.Status}}", f"pgha-lab-{n}",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            out, _ = await proc.communicate()
            seen.setdefault(n, set()).add(out.decode().strip())
        await asyncio.sleep(0.5)
