"""What a whole rolling operation cost the writers, from the probe's log. Pure.

A drill has one fault and reports its longest gap; a rolling upgrade restarts every member
and switches over once, so its cost is the sum of every stretch from a failed write to the
next acknowledged one (the goal: one switchover's worth, replicas restarted for free).
"""

from __future__ import annotations

from collections.abc import Sequence

from pgha.drill_models import Outcome, ProbeLog
from pgha.rolling_models import RollingCost


def gap_windows(attempts: Sequence[tuple[float, float, bool]]) -> list[tuple[float, float]]:
    """Every stretch from a failed attempt to the next success, as (start, length) in
    seconds; one still open when the attempts end runs to the last answer.

    :param attempts: (sent, done, ok) in the order they were made.
    """
    windows: list[tuple[float, float]] = []
    failed_at: float | None = None
    for sent, done, ok in attempts:
        if not ok:
            failed_at = sent if failed_at is None else failed_at
        elif failed_at is not None:
            windows.append((round(failed_at, 3), round(done - failed_at, 3)))
            failed_at = None
    if failed_at is not None:
        windows.append((round(failed_at, 3), round(attempts[-1][1] - failed_at, 3)))
    return windows


def rolling_cost(log: ProbeLog) -> RollingCost:
    writes = gap_windows([(w.sent, w.done, w.outcome is Outcome.ok) for w in log.writes])
    reads = gap_windows([(r.at, r.at, r.ok) for r in log.reads])
    return RollingCost(
        write_down_s=round(sum(length for _, length in writes), 3),
        write_gaps=writes,
        failed_writes=sum(w.outcome is not Outcome.ok for w in log.writes),
        failed_reads=sum(not r.ok for r in log.reads),
        read_down_s=round(sum(length for _, length in reads), 3),
    )
