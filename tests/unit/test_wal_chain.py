"""The WAL chain walk and `pgbackrest verify` parsing (pgha.checks.wal_chain)."""

from __future__ import annotations

import pytest

from pgha.checks.wal_chain import (
    WalRange,
    lsn_segment,
    needed_segments,
    parse_history,
    parse_verify,
    segment_name,
    segment_number,
    wal_gaps,
)

# What pgBackRest 2.45 printed on the lab with one data file damaged and segment 7 moved
# away (`--output=text --log-level-console=detail --verbose verify`), trimmed.
DAMAGED = """\
2026-11-26 12:09:21.605 P00   INFO: verify command begin 2.45: --exec-id=665-e4a007b8
2026-11-26 12:09:15.404 P02   INFO: invalid checksum '20261126-120000F/pg_data/base/5/1247.zst'
2026-11-26 12:09:21.838 P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000001, wal stop: 000000010000000000000006
2026-11-26 12:09:21.838 P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000008, wal stop: 000000010000000000000009
2026-11-26 12:09:21.838 P00 DETAIL: archiveId: 15-1, wal start: 00000002000000000000000A, wal stop: 00000002000000000000000A
2026-11-26 12:09:15.523 P00   INFO: stanza: lab
                                    status: error
                                      archiveId: 15-1, total WAL checked: 9, total valid WAL: 9
                                        missing: 0, checksum invalid: 0, size invalid: 0, other: 0
                                      backup: 20261126-120000F, status: invalid, total files checked: 971, total valid files: 970
                                        missing: 0, checksum invalid: 1, size invalid: 0, other: 0
2026-11-26 12:09:21.838 P00   INFO: verify command end: completed successfully (234ms)
"""  # noqa: E501


def test_verify_output_names_the_damaged_file_the_set_status_and_the_ranges() -> None:
    out = parse_verify(DAMAGED)
    assert out.problems_of_set("20261126-120000F") == [
        "invalid checksum 20261126-120000F/pg_data/base/5/1247.zst"
    ]
    assert out.backup_status == {"20261126-120000F": "invalid"}
    assert out.archive_totals == {"15-1": (9, 9)}
    assert [r.start[-2:] + r.stop[-2:] for r in out.ranges] == ["0106", "0809", "0A0A"]
    assert out.wal_problems() == []
    assert out.problems_of_set("20261126-130000F") == []


def test_damaged_wal_is_told_apart_from_damaged_set_files() -> None:
    line = "P01   INFO: file missing '15-1/0000000100000000/000000010000000000000003-ab.zst'"
    out = parse_verify(line)
    assert out.wal_problems() == [
        "file missing 15-1/0000000100000000/000000010000000000000003-ab.zst"
    ]


def test_segment_arithmetic_round_trips() -> None:
    assert segment_number("0000000100000001000000FF") == 0x1FF
    assert segment_name(2, 0x1FF) == "0000000200000001000000FF"
    assert lsn_segment("0/A0000A0") == 0x0A
    assert lsn_segment("1/0") == 0x100


def test_history_lists_parents_oldest_first() -> None:
    text = "1\t0/A0000A0\tno recovery target specified\n\n2\t0/C000000\tbefore 2026-01-01\n"
    assert parse_history(text) == [(1, "0/A0000A0"), (2, "0/C000000")]


def test_chain_across_two_switches_reads_each_segment_from_the_newest_timeline() -> None:
    spans = needed_segments(
        "000000010000000000000005",
        "00000003000000000000000E",
        [(1, "0/A0000A0"), (2, "0/C000000")],
    )
    assert spans == [(1, 5, 9), (2, 0xA, 0xB), (3, 0xC, 0xE)]


def test_chain_on_one_timeline() -> None:
    assert needed_segments(
        "000000020000000000000010", "000000020000000000000014", [(1, "0/A0000A0")]
    ) == [(2, 0x10, 0x14)]


def test_a_set_on_an_abandoned_timeline_cannot_reach_the_sentinel() -> None:
    with pytest.raises(ValueError, match="abandoned branch"):
        needed_segments(
            "000000030000000000000005",
            "000000040000000000000009",
            [(1, "0/3000000"), (2, "0/4000000")],
        )


def test_gaps_name_missing_segments_and_ignore_other_timelines() -> None:
    ranges = [
        WalRange("15-1", "000000010000000000000001", "000000010000000000000006"),
        WalRange("15-1", "000000010000000000000008", "000000010000000000000009"),
        WalRange("15-1", "00000002000000000000000A", "00000002000000000000000A"),
    ]
    spans = needed_segments(
        "000000010000000000000005", "00000002000000000000000C", [(1, "0/A0000A0")]
    )
    assert wal_gaps(ranges, spans) == [
        "000000010000000000000007",
        "00000002000000000000000B to 00000002000000000000000C",
    ]
    assert wal_gaps(ranges, [(1, 1, 6)]) == []
