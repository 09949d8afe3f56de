"""Judging a drill's writes from what the client saw and what the table holds. Pure.

The rules are the usual ones for a register of unique inserts: an acknowledged insert must
be there exactly once (else *lost*); an insert that certainly failed must not be there
(else a *ghost*); one whose outcome the client could not know may be either way
(*recovered* when it is there). Unavailability is measured from the first failed attempt to
the first success after it, so a fault that never shows in the client's view costs 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from pgha.drill_models import Outcome, ProbeLog, ReadAttempt, Verdict, WriteAttempt


def longest_gap_window(attempts: Sequence[tuple[float, float, bool]]) -> tuple[float, float]:
    """The longest stretch from a failed attempt to the next success, as (start, length) in
    seconds; (0.0, 0.0) when nothing failed.

    :param attempts: (sent, done, ok) in the order they were made.
    """
    best, failed_at = (0.0, 0.0), None
    for sent, done, ok in attempts:
        if not ok:
            failed_at = sent if failed_at is None else failed_at
        elif failed_at is not None:
            if done - failed_at > best[1]:
                best = (failed_at, done - failed_at)
            failed_at = None
    if failed_at is not None and attempts:  # never recovered while the probe ran
        if attempts[-1][1] - failed_at > best[1]:
            best = (failed_at, attempts[-1][1] - failed_at)
    return round(best[0], 3), round(best[1], 3)


def longest_gap(attempts: Sequence[tuple[float, float, bool]]) -> float:
    """The length of :func:`longest_gap_window`, in seconds."""
    return longest_gap_window(attempts)[1]


def _write_gap(writes: Sequence[WriteAttempt]) -> tuple[float, float]:
    return longest_gap_window([(w.sent, w.done, w.outcome is Outcome.ok) for w in writes])


def _read_gaps(reads: Sequence[ReadAttempt]) -> float:
    return longest_gap([(r.at, r.at, r.ok) for r in reads])


def _span(writes: Sequence[WriteAttempt]) -> float:
    """From the first one sent to the last one answered (0 for none)."""
    if not writes:
        return 0.0
    return round(max(w.done for w in writes) - min(w.sent for w in writes), 3)


def judge(log: ProbeLog) -> Verdict:
    """The verdict on a probe's writes.

    :raises ValueError: the table could not be read back, so nothing can be judged.
    """
    if log.readback_error:
        raise ValueError(f"the probe table could not be read back: {log.readback_error}")
    by_seq = {w.seq: w for w in log.writes}
    acked = [w for w in log.writes if w.outcome is Outcome.ok]
    lost = [w for w in acked if log.present.get(w.seq, 0) == 0]
    ghosts = [w.seq for w in log.writes
              if w.outcome is Outcome.failed and log.present.get(w.seq, 0) > 0]  # fmt: skip
    unknown = [w.seq for w in log.writes if w.outcome is Outcome.unknown]
    strangers = [seq for seq in log.present if seq not in by_seq]
    gap_from, gap = _write_gap(log.writes)
    return Verdict(
        acknowledged=len(acked),
        lost=[w.seq for w in lost],
        lost_span_s=_span(lost),
        ghosts=sorted(ghosts + strangers),
        recovered=[s for s in unknown if log.present.get(s, 0) > 0],
        unknown_absent=[s for s in unknown if log.present.get(s, 0) == 0],
        duplicates=sorted(s for s, n in log.present.items() if n > 1),
        write_gap_s=gap,
        write_gap_from_s=gap_from if gap else None,
        read_gap_s=_read_gaps(log.reads),
        max_commit_s=round(max((w.done - w.sent for w in acked), default=0.0), 3),
    )
