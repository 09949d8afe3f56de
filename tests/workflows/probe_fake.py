"""Fakes shared by the rolling operations' tests, under the real activity names: a probe
(one write every 0.1 s until the workflow's `probe_done` query says stop, failed while
``failing()`` says so; every acknowledged row is present afterwards) and a cluster that is
always whole."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from pgha.drill_models import Outcome, ProbeInput, ProbeLog, WriteAttempt
from pgha.status_models import Member, PatroniStatus
from pgha.steps import HostStep


def fake_probe(failing: Callable[[], bool] = lambda: False) -> Callable[..., Any]:
    @activity.defn(name="drill.probe")
    async def probe(inp: ProbeInput) -> ProbeLog:
        handle = activity.client().get_workflow_handle(inp.workflow_id)
        writes, seq = [], 0
        while not await handle.query("probe_done", result_type=bool):
            seq += 1
            outcome = Outcome.failed if failing() else Outcome.ok
            writes.append(WriteAttempt(seq=seq, sent=seq * 0.1, done=seq * 0.1 + 0.01,
                                       outcome=outcome))  # fmt: skip
            activity.heartbeat()
            await asyncio.sleep(0.1)
        present = {w.seq: 1 for w in writes if w.outcome is Outcome.ok}
        return ProbeLog(run=inp.run, started_at=datetime.now(UTC), writes=writes,
                        present=present)  # fmt: skip

    return probe


def fake_whole(members: tuple[str, ...] = ("db1", "db2", "db3"),
               leader: str = "db1") -> Callable[..., Any]:  # fmt: skip
    """`drill.wait_healthy` for a cluster that is always whole, ``leader`` leading."""

    @activity.defn(name="drill.wait_healthy")
    async def whole(step: HostStep) -> PatroniStatus:
        return PatroniStatus(source=leader, members=[
            Member(name=h, host=h, role="leader" if h == leader else "replica",
                   state="running", timeline=2, lag_bytes=None if h == leader else 0)
            for h in members])  # fmt: skip

    return whole
