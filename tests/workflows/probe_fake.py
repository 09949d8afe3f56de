"""A fake probe under the real activity name, shared by the rolling operations' fakes: one
write every 0.1 s until the workflow's `probe_done` query says stop, failed while
``failing()`` says so; every acknowledged row is present afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from pgha.drill_models import Outcome, ProbeInput, ProbeLog, WriteAttempt


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
