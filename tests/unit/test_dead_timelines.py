"""Finding and setting aside archive timelines no member follows."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pgha.checks.dead_timelines import dead_timelines, set_aside_script

# One archive id's directory as pgBackRest lays it out (seen on the lab).
ARCHIVE = [
    "00000009.history", "0000000A.history", "0000000B.history",
    "0000000900000000", "0000000A00000000", "0000000B00000000",
]  # fmt: skip


def test_only_timelines_newer_than_the_leaders_are_dead() -> None:
    assert dead_timelines(ARCHIVE, 10) == [11]
    assert dead_timelines(ARCHIVE, 11) == []
    assert dead_timelines([*ARCHIVE, "0000000C.history"], 10) == [11, 12]


def test_the_script_moves_the_dead_timelines_files_and_nothing_else(tmp_path: Path) -> None:
    archive, aside = tmp_path / "archive" / "15-1", tmp_path / "aside" / "15-1"
    archive.mkdir(parents=True)
    for name in ARCHIVE:
        if name.endswith(".history"):
            (archive / name).write_text("1\t0/D0000A0\tno recovery target specified\n")
        else:
            (archive / name).mkdir()
            (archive / name / f"{name}000000AB-0123.zst").write_bytes(b"wal")
    script = set_aside_script(str(archive), str(aside), [11])
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0000000B.history", "0000000B00000000"]
    assert sorted(p.name for p in aside.iterdir()) == ["0000000B.history", "0000000B00000000"]
    assert (aside / "0000000B00000000" / "0000000B00000000000000AB-0123.zst").exists()
    assert sorted(p.name for p in archive.iterdir()) == sorted(ARCHIVE[:2] + ARCHIVE[3:5])
    again = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert again.stdout == ""  # nothing left to move
