"""A drill probe's log as counts per slice of time, for the report and its timeline picture.
Pure: no I/O, no clock, and no judgement (that is pgha.checks.probe_verdict's).

The raw log holds every attempt (20 writes a second for minutes: thousands of entries); the
series keeps a few counts per bucket, small enough to store in every report.
"""

from __future__ import annotations

import math
from collections import Counter

from pgha.drill_models import Outcome, ProbeLog, ProbeSeries, SeriesBucket

#: The bucket field each write outcome is counted in.
_WRITE_FIELD = {
    Outcome.ok: "writes_ok",
    Outcome.failed: "writes_failed",
    Outcome.unknown: "writes_unknown",
}


def _index(t: float, bucket_s: float) -> int:
    # The tolerance keeps float error from moving a time that is an exact multiple of the
    # bucket into the bucket before it (0.3 / 0.1 is 2.9999999999999996).
    return math.floor(t / bucket_s + 1e-9)


def series_of(log: ProbeLog, bucket_s: float = 0.25) -> ProbeSeries:
    """The probe's outcomes in buckets of ``bucket_s`` seconds since the probe started.

    A write counts in the bucket of its ``sent`` time (when the application asked, which is
    when an outage starts for it, however long the answer took), a read in that of its
    ``at``. Every bucket from the first attempt's to the last one's is present, empty ones
    with zeros, so a stretch where the probe was stuck shows as a gap. Idempotent.

    :raises ValueError: ``bucket_s`` is not positive.
    """
    if not bucket_s > 0:
        raise ValueError(f"bucket_s must be positive, not {bucket_s}")
    counts: dict[int, Counter[str]] = {}
    for w in log.writes:
        counts.setdefault(_index(w.sent, bucket_s), Counter())[_WRITE_FIELD[w.outcome]] += 1
    for r in log.reads:
        field = "reads_ok" if r.ok else "reads_failed"
        counts.setdefault(_index(r.at, bucket_s), Counter())[field] += 1
    if not counts:
        return ProbeSeries(started_at=log.started_at, bucket_s=bucket_s)
    buckets = [
        SeriesBucket.model_validate({"at": round(i * bucket_s, 3), **counts.get(i, {})})
        for i in range(min(counts), max(counts) + 1)
    ]
    return ProbeSeries(started_at=log.started_at, bucket_s=bucket_s, buckets=buckets)


def longest_write_outage(series: ProbeSeries) -> tuple[float, float] | None:
    """The longest stretch in which writes failed and none succeeded, as (start, end) in
    seconds since the probe started, or None when there was none.

    It starts at a bucket with failed or unknown writes and no acknowledged one, and ends
    where the next bucket with an acknowledged write starts (or at the end of the series
    when none came). Bucket-coarse, and a bucket that also holds an acknowledged write
    starts none, so a hung first write is missed: the picture shades the verdict's exact
    window instead when the verdict has one (reports since 2026-12-03).
    """
    stretches: list[tuple[float, float]] = []
    start: float | None = None
    for b in series.buckets:
        if start is None:
            if b.writes_ok == 0 and (b.writes_failed or b.writes_unknown):
                start = b.at
        elif b.writes_ok:
            stretches.append((start, b.at))
            start = None
    if start is not None:  # never recovered while the probe ran
        stretches.append((start, round(series.buckets[-1].at + series.bucket_s, 3)))
    # max() keeps the first of equally long stretches: the one an operator looks for first.
    return max(stretches, key=lambda s: s[1] - s[0], default=None)
