"""Reading `pgbackrest verify` and proving the WAL chain a restore needs has no gap. Pure.

pgBackRest 2.45's `verify` checks every file of every set and every archived WAL segment
against its checksum, but it reports a hole in the archive only as two separate ranges
("wal start/stop", at log level detail) and exits 0 even when it finds damage. So pgha
parses its output and walks the chain itself: from the set's first segment to the
sentinel's, across timeline switches read from the target timeline's history file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: PostgreSQL's default WAL segment size; pgha's initdb does not change it.
WAL_SEGMENT_BYTES = 16 * 1024 * 1024
SEGMENTS_PER_XLOGID = 0x1_0000_0000 // WAL_SEGMENT_BYTES

_RANGE = re.compile(r"archiveId: (\S+), wal start: ([0-9A-F]{24}), wal stop: ([0-9A-F]{24})")
_FILE_PROBLEM = re.compile(r"(?:INFO|WARN|DETAIL): ((?:file missing|invalid \w+)[^']*)'([^']+)'")
_BACKUP_STATUS = re.compile(r"^\s*backup: (\S+), status: (\w+)")
_ARCHIVE_TOTALS = re.compile(
    r"^\s*archiveId: (\S+), total WAL checked: (\d+), total valid WAL: (\d+)"
)
_WARN_OR_ERROR = re.compile(r"(?:WARN|ERROR): (.*)$")


@dataclass(frozen=True)
class WalRange:
    archive_id: str
    start: str
    stop: str


@dataclass
class VerifyOutput:
    """What `pgbackrest --output=text --log-level-console=detail verify` said."""

    ranges: list[WalRange] = field(default_factory=list)
    #: (problem, repository path) for each damaged or missing file it found.
    file_problems: list[tuple[str, str]] = field(default_factory=list)
    #: label -> status (valid, invalid, ...), for the sets it listed.
    backup_status: dict[str, str] = field(default_factory=dict)
    #: archive id -> (segments checked, segments valid).
    archive_totals: dict[str, tuple[int, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def problems_of_set(self, label: str) -> list[str]:
        return [f"{what} {path}" for what, path in self.file_problems if path.startswith(label)]

    def wal_problems(self) -> list[str]:
        """Damaged archived segments (paths start with an archive id such as ``15-1/``)."""
        return [
            f"{what} {path}"
            for what, path in self.file_problems
            if re.match(r"^\d+-\d+/", path) is not None
        ]


def parse_verify(text: str) -> VerifyOutput:
    out = VerifyOutput()
    for line in text.splitlines():
        if m := _RANGE.search(line):
            out.ranges.append(WalRange(m.group(1), m.group(2), m.group(3)))
        elif m := _FILE_PROBLEM.search(line):
            out.file_problems.append((m.group(1).strip(), m.group(2)))
        elif m := _BACKUP_STATUS.match(line):
            out.backup_status[m.group(1)] = m.group(2)
        elif m := _ARCHIVE_TOTALS.match(line):
            out.archive_totals[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        elif m := _WARN_OR_ERROR.search(line):
            out.warnings.append(m.group(1).strip())
    return out


def timeline_of(segment: str) -> int:
    return int(segment[:8], 16)


def segment_number(segment: str) -> int:
    """The segment's position in the WAL stream, independent of its timeline."""
    return int(segment[8:16], 16) * SEGMENTS_PER_XLOGID + int(segment[16:24], 16)


def segment_name(timeline: int, number: int) -> str:
    return f"{timeline:08X}{number // SEGMENTS_PER_XLOGID:08X}{number % SEGMENTS_PER_XLOGID:08X}"


def lsn_segment(lsn: str) -> int:
    """The number of the segment holding ``lsn`` (``X/Y`` hex)."""
    hi, lo = lsn.split("/")
    return ((int(hi, 16) << 32) | int(lo, 16)) // WAL_SEGMENT_BYTES


def parse_history(text: str) -> list[tuple[int, str]]:
    """A timeline history file: (parent timeline, LSN where it ended), oldest first."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit() and "/" in parts[1]:
            entries.append((int(parts[0]), parts[1]))
    return entries


def needed_segments(
    start: str, stop: str, history: list[tuple[int, str]]
) -> list[tuple[int, int, int]]:
    """The segments recovery reads from ``start`` (the set's first) to ``stop`` (the
    sentinel's), as (timeline, first number, last number) spans.

    Recovery to the newest timeline reads each segment from the newest timeline that
    existed at that point: an old timeline up to the segment before its switch point, the
    next from the switch segment on (it holds a copy of the old timeline's part).

    :param history: the history file of ``stop``'s timeline (empty for timeline 1).
    :raises ValueError: ``start``'s timeline is not an ancestor of ``stop``'s.
    """
    start_tl, stop_tl = timeline_of(start), timeline_of(stop)
    ends = {tl: lsn_segment(lsn) for tl, lsn in history}
    if start_tl != stop_tl and start_tl not in ends:
        raise ValueError(
            f"the set starts on timeline {start_tl}, which is not in the history of timeline "
            f"{stop_tl}: it belongs to an abandoned branch and cannot reach the sentinel"
        )
    path = [tl for tl, _ in history if tl >= start_tl] + [stop_tl]
    spans = []
    first = segment_number(start)
    for tl in path:
        last = ends[tl] - 1 if tl != stop_tl else segment_number(stop)
        if last >= first:
            spans.append((tl, first, last))
        first = max(first, ends.get(tl, first - 1) if tl != stop_tl else first)
    return spans


def wal_gaps(ranges: list[WalRange], spans: list[tuple[int, int, int]]) -> list[str]:
    """Segments of ``spans`` that no verified range holds, as readable intervals."""
    gaps = []
    for tl, first, last in spans:
        covered = sorted(
            (segment_number(r.start), segment_number(r.stop))
            for r in ranges
            if timeline_of(r.start) == tl
        )
        at = first
        for lo, hi in covered:
            if hi < at:
                continue
            if lo > at:
                gaps.append((tl, at, min(lo - 1, last)))
            at = max(at, hi + 1)
            if at > last:
                break
        if at <= last:
            gaps.append((tl, at, last))
    return [
        segment_name(tl, a) if a == b else f"{segment_name(tl, a)} to {segment_name(tl, b)}"
        for tl, a, b in gaps
        if a <= b
    ]
