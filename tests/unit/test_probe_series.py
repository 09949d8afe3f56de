"""The probe's series: counts per bucket of the time an attempt was made, gaps kept, and the
longest write outage the picture shades."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pgha.checks.probe_series import longest_write_outage, series_of
from pgha.drill_models import (
    Outcome,
    ProbeLog,
    ProbeSeries,
    ReadAttempt,
    SeriesBucket,
    WriteAttempt,
)
from tests.unit.drill_samples import probe_log

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def w(seq: int, sent: float, outcome: Outcome = Outcome.ok, took: float = 0.01) -> WriteAttempt:
    return WriteAttempt(seq=seq, sent=sent, done=sent + took, outcome=outcome)


def test_series_of_counts_by_sent_time_and_keeps_empty_buckets() -> None:
    log = ProbeLog(
        run="r",
        started_at=T0,
        writes=[
            w(1, 0.30),
            w(2, 0.49),
            w(3, 0.50, Outcome.unknown, took=4.0),  # counted when sent, not when answered
            w(4, 1.26, Outcome.failed),
        ],
        reads=[ReadAttempt(at=0.25, ok=True), ReadAttempt(at=1.49, ok=False)],
    )
    s = series_of(log)
    assert s.started_at == T0 and s.bucket_s == 0.25
    assert s.buckets == [
        SeriesBucket(at=0.25, writes_ok=2, reads_ok=1),
        SeriesBucket(at=0.5, writes_unknown=1),
        SeriesBucket(at=0.75),  # nothing was attempted: present, so the gap shows
        SeriesBucket(at=1.0),
        SeriesBucket(at=1.25, writes_failed=1, reads_failed=1),
    ]


def test_series_of_exact_multiples_land_in_their_own_bucket() -> None:
    # 0.3 / 0.1 is 2.9999999999999996 in floats: still bucket 0.3, not 0.2.
    log = ProbeLog(run="r", started_at=T0, writes=[w(1, 0.3), w(2, 0.7)])
    s = series_of(log, bucket_s=0.1)
    assert [b.at for b in s.buckets] == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert [b.writes_ok for b in s.buckets] == [1, 0, 0, 0, 1]


def test_series_of_rounds_bucket_times_to_milliseconds() -> None:
    s = series_of(ProbeLog(run="r", started_at=T0, writes=[w(1, 0.0), w(2, 1.0)]), 1 / 3)
    assert [b.at for b in s.buckets] == [0.0, 0.333, 0.667, 1.0]


def test_series_of_empty_log_has_no_buckets() -> None:
    assert series_of(ProbeLog(run="r", started_at=T0)).buckets == []


def test_series_of_non_positive_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="bucket_s must be positive"):
        series_of(ProbeLog(run="r", started_at=T0), 0)


def test_series_of_realistic_drill_keeps_every_attempt_and_the_stall() -> None:
    log = probe_log()
    s = series_of(log)
    assert len(s.buckets) == 240  # 60 s in 0.25 s buckets, none skipped
    assert sum(b.writes_ok + b.writes_failed + b.writes_unknown for b in s.buckets) == len(
        log.writes
    )
    assert sum(b.reads_ok + b.reads_failed for b in s.buckets) == len(log.reads)
    by_at = {b.at: b for b in s.buckets}
    assert by_at[15.0].writes_unknown == 1
    # The hung write: nothing sent for 3 s, the buckets are there with zeros.
    assert all(by_at[x / 4].writes_ok + by_at[x / 4].writes_failed == 0 for x in range(61, 72))
    assert by_at[20.0].writes_failed == 5 and by_at[20.0].writes_ok == 0


def _series(*counts: tuple[int, int, int]) -> ProbeSeries:
    """(ok, failed, unknown) per 0.5 s bucket from 0."""
    return ProbeSeries(
        started_at=T0,
        bucket_s=0.5,
        buckets=[
            SeriesBucket(at=i * 0.5, writes_ok=ok, writes_failed=f, writes_unknown=u)
            for i, (ok, f, u) in enumerate(counts)
        ],
    )


def test_longest_write_outage_runs_from_failure_to_next_success() -> None:
    s = _series((5, 0, 0), (0, 1, 0), (0, 0, 0), (2, 1, 0), (0, 0, 1), (0, 3, 0), (0, 0, 0),
                (4, 0, 0))  # fmt: skip
    # 0.5-1.5 (1 s) then 2.0-3.5 (1.5 s): the longer one, empty buckets included.
    assert longest_write_outage(s) == (2.0, 3.5)


def test_longest_write_outage_mixed_buckets_do_not_start_one() -> None:
    assert longest_write_outage(_series((5, 0, 0), (3, 2, 0), (5, 0, 0))) is None
    assert longest_write_outage(_series()) is None


def test_longest_write_outage_never_recovered_lasts_to_the_end() -> None:
    assert longest_write_outage(_series((5, 0, 0), (0, 2, 0), (0, 0, 0))) == (0.5, 1.5)


def test_longest_write_outage_of_realistic_drill() -> None:
    # The hung write (15.0-18.0) is shorter than the failures until the new leader.
    assert longest_write_outage(series_of(probe_log())) == (18.25, 33.0)
