"""WAL segments of an older timeline that block the primary's archiver. Pure.

Seen in the lab after many role changes (Patroni 3.0.2, PostgreSQL 15, pgBackRest 2.44):
a member that had been primary on timeline N, was rewound and later promoted again still
held ``archive_status/<segment of N>.ready``, while the repository already held that
segment with other content (archived by whichever member was primary on N when it was
complete). pgBackRest rightly refuses to overwrite it ("[045] ... already exists in the
repo1 archive with a different checksum"); PostgreSQL's archiver retries the oldest
``.ready`` first and forever, so no later WAL reached the repository: no point-in-time
recovery past that moment, and replicas that fall back on the archive stop.

The remedy pgha applies, only for segments of a timeline older than the primary's and
only after pgBackRest itself answered [045] for them: keep a copy of the local segment
outside the data directory and mark it archived (``.ready`` -> ``.done``), as the
archiver would after a success. The archive is never written to; nothing is deleted.
"""

from __future__ import annotations

import re
import shlex

_SEGMENT_READY = re.compile(r"^([0-9A-F]{8})[0-9A-F]{16}\.ready$")
#: pgBackRest's error code for "already exists in the archive with a different checksum".
DIFFERENT_COPY_CODE = 45


def stale_ready_segments(status_names: list[str], current_timeline: int) -> list[str]:
    """Segments (not history, backup or partial files) whose ``.ready`` marker is among
    ``status_names`` (the names in pg_wal/archive_status) and whose timeline is older than
    ``current_timeline``, oldest first."""
    stale = [
        name.removesuffix(".ready")
        for name in status_names
        if (m := _SEGMENT_READY.match(name)) and int(m.group(1), 16) < current_timeline
    ]
    return sorted(stale)


def mark_archived_script(pg_wal: str, keep_dir: str, segments: list[str]) -> str:
    """A shell script (run as postgres) that keeps a copy of each segment in ``keep_dir``
    and turns its ``.ready`` into ``.done``, printing each segment it marked. Idempotent:
    a segment already marked is skipped."""
    wal, keep = shlex.quote(pg_wal), shlex.quote(keep_dir)
    lines = ["set -eu", f"mkdir -p -m 0700 {keep}"]
    for seg in segments:
        s = shlex.quote(seg)
        ready = f"{wal}/archive_status/{s}.ready"
        lines.append(
            f"if [ -e {ready} ]; then "
            f"if [ -e {wal}/{s} ]; then cp -p {wal}/{s} {keep}/; fi; "
            f"mv {ready} {wal}/archive_status/{s}.done; echo {s}; fi"
        )
    return "\n".join(lines) + "\n"
