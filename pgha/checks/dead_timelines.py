"""Timelines in the WAL archive that no member follows. Pure.

A member promoted while another still held on to leadership (a frozen primary that
resumed and overwrote the leader key, seen on Patroni 3.0.2 without a watchdog) leaves its
timeline's history file and segments in the archive after it is demoted. Replicas recover
with recovery_target_timeline 'latest', which is the newest timeline in the archive: they
try to follow the dead one and fail to start ("requested timeline N does not contain
minimum recovery point"), however often they are reinitialised. Setting the dead
timeline's files aside (never deleting them: they hold the writes that timeline took) lets
them follow the leader again.

pgBackRest's archive layout: ``<repo>/archive/<stanza>/<archive id>/`` holds
``TTTTTTTT.history`` files and segment directories named by the first 16 hex digits of
their segments (``TTTTTTTTLLLLLLLL``).
"""

from __future__ import annotations

import re
import shlex

_HISTORY = re.compile(r"^([0-9A-F]{8})\.history")


def dead_timelines(entries: list[str], leader_timeline: int) -> list[int]:
    """Timelines newer than the leader's that have a history file among ``entries`` (the
    names in one archive id's directory), oldest first."""
    found = {int(m.group(1), 16) for e in entries if (m := _HISTORY.match(e))}
    return sorted(t for t in found if t > leader_timeline)


def set_aside_script(archive_dir: str, quarantine_dir: str, timelines: list[int]) -> str:
    """A shell script moving every file of ``timelines`` (history files and segment
    directories) from ``archive_dir`` into ``quarantine_dir``, printing each name moved.
    Idempotent: a second run finds nothing left to move."""
    q = shlex.quote(quarantine_dir)
    lines = ["set -eu", f"cd {shlex.quote(archive_dir)}", f"mkdir -p {q}"]
    for t in timelines:
        tl = f"{t:08X}"
        lines.append(
            f"for f in {tl}.history* {tl}[0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F]"
            f'[0-9A-F][0-9A-F]; do [ -e "$f" ] || continue; mv "$f" {q}/; echo "$f"; done'
        )
    return "\n".join(lines) + "\n"
