"""A realistic drill for the report tests: a partition of the primary, as the lab shows it.

The probe writes 20 rows and reads 20 times a second for 60 s. The fault comes 15 s in:
one write hangs 3 s (outcome unknown), then every write fails fast from 18 s until a new
leader takes them at 33 s; reads fail from 15 s to 17.5 s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pgha.checks.probe_series import series_of
from pgha.checks.probe_verdict import judge
from pgha.drill_models import (
    ClusterEvent,
    DrillReport,
    Outcome,
    PatroniTimes,
    ProbeLog,
    ReadAttempt,
    Scenario,
    WriteAttempt,
)

#: The workflow's start; the probe starts 4 s later.
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
PROBE_START = T0 + timedelta(seconds=4)


def probe_log() -> ProbeLog:
    writes: list[WriteAttempt] = []
    t, seq = 0.0, 0
    while t < 60:
        seq += 1
        if t == 15.0:
            writes.append(WriteAttempt(seq=seq, sent=t, done=t + 3, outcome=Outcome.unknown))
            t = 18.0
            continue
        outcome = Outcome.failed if 18.1 <= t < 33.0 else Outcome.ok
        writes.append(WriteAttempt(seq=seq, sent=t, done=t + 0.01, outcome=outcome))
        t = round(t + 0.05, 3)
    reads = [ReadAttempt(at=i / 20, ok=not 15.0 <= i / 20 < 17.5) for i in range(1200)]
    present = {w.seq: 1 for w in writes if w.outcome is Outcome.ok}
    return ProbeLog(run="lab-x", started_at=PROBE_START, writes=writes, reads=reads,
                    present=present)  # fmt: skip


def event(name: str, at: float, detail: str = "", *, with_when: bool = True) -> ClusterEvent:
    return ClusterEvent(
        name=name, at=at, detail=detail, when=T0 + timedelta(seconds=at) if with_when else None
    )


def drill_report(**kw: Any) -> DrillReport:
    log = probe_log()
    data: dict[str, Any] = {
        "cluster": "lab",
        "scenario": Scenario.partition_primary,
        "workflow_id": "pgha-op:lab",
        "started_at": T0,
        "finished_at": T0 + timedelta(seconds=70),
        "passed": True,
        "old_leader": "db1",
        "new_leader": "db2",
        "timeline_before": 3,
        "timeline_after": 4,
        "events": [
            event("approved", 1.0, "alice"),  # before the probe: not on the picture
            event("fault", 19.0, "partition-primary on db1"),
            event("leader running", 37.2, "db2"),
            event("healed", 55.0, "every member streams with no lag"),
        ],
        "verdict": judge(log),
        "healed": True,
        "healing": ["every member streams with no lag"],
        "patroni": {"ttl": 30, "loop_wait": 10},
        "series": series_of(log),
        "patroni_times": PatroniTimes(
            fault_at=T0 + timedelta(seconds=19),
            detected_s=14.5,
            promoted_s=18.1,
            history_switch_s=17.8,
            history_reason="no recovery target specified",
        ),
    }
    data.update(kw)
    return DrillReport.model_validate(data)


def failed_report(reason: str) -> DrillReport:
    """A switchover drill that failed before any verdict: no figures, only its reason."""
    return DrillReport(cluster="lab", scenario=Scenario.switchover, workflow_id="w",
                       started_at=T0, finished_at=T0, passed=False, reason=reason)  # fmt: skip
