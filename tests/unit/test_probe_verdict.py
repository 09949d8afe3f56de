"""The drill verdict: lost, ghost, recovered and duplicated writes, and the gaps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pgha.checks.probe_verdict import judge, longest_gap
from pgha.drill_models import Outcome, ProbeLog, ReadAttempt, WriteAttempt

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def w(seq: int, sent: float, outcome: Outcome, took: float = 0.01) -> WriteAttempt:
    return WriteAttempt(seq=seq, sent=sent, done=sent + took, outcome=outcome)


def test_a_clean_failover_loses_nothing_and_measures_the_gap() -> None:
    writes = [
        w(1, 0.0, Outcome.ok), w(2, 0.1, Outcome.ok),
        w(3, 0.2, Outcome.unknown, took=0.5),  # the connection broke mid-commit
        w(4, 0.8, Outcome.failed), w(5, 1.3, Outcome.failed),
        w(6, 2.9, Outcome.ok, took=0.2),
    ]  # fmt: skip
    log = ProbeLog(run="r", started_at=T0, writes=writes, present={1: 1, 2: 1, 3: 1, 6: 1},
                   reads=[ReadAttempt(at=0.0, ok=True), ReadAttempt(at=1.0, ok=False),
                          ReadAttempt(at=2.5, ok=True)])  # fmt: skip
    v = judge(log)
    assert v.safe and v.acknowledged == 3
    assert v.recovered == [3] and v.unknown_absent == []
    assert v.write_gap_s == pytest.approx(3.1 - 0.2)  # first non-ack at 0.2, ack at 3.1
    assert v.write_gap_from_s == pytest.approx(0.2)
    assert v.read_gap_s == pytest.approx(1.5)
    assert v.max_commit_s == pytest.approx(0.2)


def test_lost_ghost_and_duplicate_writes_are_each_named() -> None:
    writes = [w(1, 0.0, Outcome.ok), w(2, 1.0, Outcome.ok), w(3, 2.0, Outcome.failed),
              w(4, 3.0, Outcome.ok)]  # fmt: skip
    log = ProbeLog(run="r", started_at=T0, writes=writes, present={1: 1, 3: 1, 4: 2, 99: 1})
    v = judge(log)
    assert v.lost == [2] and v.lost_span_s == pytest.approx(0.01)
    assert v.ghosts == [3, 99]  # a row nobody wrote is a ghost too
    assert v.duplicates == [4]
    assert not v.safe


def test_a_failure_never_followed_by_a_success_counts_to_the_end() -> None:
    assert longest_gap([(0.0, 0.1, True), (1.0, 1.1, False), (2.0, 5.0, False)]) == 4.0
    assert longest_gap([]) == 0.0


def test_no_readback_no_verdict() -> None:
    with pytest.raises(ValueError, match="could not be read back"):
        judge(ProbeLog(run="r", started_at=T0, readback_error="no primary"))


def test_a_stale_view_that_looks_whole_is_not_taken_for_healed() -> None:
    from pgha.activities.drill import agreed_health
    from pgha.status_models import Member, PatroniStatus

    def view(leader: str) -> PatroniStatus:
        return PatroniStatus(source="x", members=[
            Member(name=h, host=h, role="leader" if h == leader else "replica",
                   state="running", lag_bytes=None if h == leader else 0)
            for h in ("db1", "db2", "db3")
        ])  # fmt: skip

    assert agreed_health([view("db2")] * 3, 3, 0) == []
    # db1 was cut off and still serves its view from before: it disagrees.
    assert agreed_health([view("db1"), view("db2"), view("db2")], 3, 0) == [
        "members disagree on the leader (db1, db2)"
    ]
    assert agreed_health([view("db2")] * 2, 3, 0) == ["2 of 3 members answer"]


def test_no_failed_write_has_no_gap_start() -> None:
    log = ProbeLog(run="r", started_at=T0, writes=[w(1, 0.0, Outcome.ok)], present={1: 1})
    v = judge(log)
    assert v.write_gap_s == 0 and v.write_gap_from_s is None
