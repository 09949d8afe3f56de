"""Which .ready markers hold the archiver on an older timeline, and the script that marks
them archived; the script runs for real in a temporary pg_wal."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pgha.checks.stale_ready import mark_archived_script, stale_ready_segments

OLD = "00000020000000000000002F"
CURRENT = "0000002300000000000000A1"


def test_only_segments_of_older_timelines_are_stale() -> None:
    names = [
        f"{CURRENT}.ready",
        f"{OLD}.ready",
        "00000001000000000000000A.ready",
        "00000023.history.ready",
        "00000020000000000000002E.partial.ready",
        "000000200000000000000030.00000028.backup.ready",
        "00000020000000000000002D.done",
    ]
    assert stale_ready_segments(names, 0x23) == ["00000001000000000000000A", OLD]
    assert stale_ready_segments(names, 1) == []


def test_script_keeps_a_copy_and_marks_done_once(tmp_path: Path) -> None:
    wal = tmp_path / "pg_wal"
    (wal / "archive_status").mkdir(parents=True)
    (wal / OLD).write_bytes(b"local copy")
    (wal / "archive_status" / f"{OLD}.ready").touch()
    (wal / "archive_status" / f"{CURRENT}.ready").touch()
    keep = tmp_path / "kept dir"  # a space: the script quotes paths
    script = mark_archived_script(str(wal), str(keep), [OLD])

    first = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert first.stdout.split() == [OLD]
    assert (keep / OLD).read_bytes() == b"local copy" and (wal / OLD).exists()
    assert sorted(p.name for p in (wal / "archive_status").iterdir()) == [
        f"{OLD}.done",
        f"{CURRENT}.ready",
    ]
    again = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert again.stdout == ""
