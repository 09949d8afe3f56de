"""Why PostgreSQL would not start on a member: its last FATAL/PANIC lines, for an error
message that names the cause instead of pointing at two logs. Read-only, best effort.

Two places hold them. A postmaster that dies before its logging collector runs (a bad
setting, a missing shared_preload_libraries library, a lower max_connections than the
primary's) writes to stderr, which Patroni passes on to its journal; later failures go to
the server log under /var/log/postgresql (see pgha.render.postgres).
"""

from __future__ import annotations

import shlex

from pgha.errors import HostError
from pgha.hosts.host import Host
from pgha.render.postgres import LOG_DIRECTORY, log_filename

#: Lines kept for a message: enough for the cause and its HINT, short enough to read.
KEEP = 3

#: $1: the server log. Both sources carry log_line_prefix's timestamp first, so a sort
#: puts them in time order, newest last. A clean shutdown's FATALs ("terminating ... due to
#: administrator command") say nothing about why a start failed, and are left out.
SCRIPT = r"""{ journalctl -u patroni -n 300 --no-pager -o cat 2>/dev/null
  tail -n 300 -- "$1" 2>/dev/null; } | grep -E '(FATAL|PANIC):' \
  | grep -v 'due to administrator command' | sort -s -k1,2 | tail -n {keep}
"""


def server_log(version: int | str, cluster: str) -> str:
    """The server log pgha configures (log_directory + log_filename)."""
    return f"{LOG_DIRECTORY}/{log_filename(version, cluster)}"


def parse_errors(out: str) -> list[str]:
    """Each message once, from its level on (the timestamp and pid dropped, spaces
    collapsed), at the place of its newest occurrence, cut to what a message can carry.
    Pure."""
    found: list[str] = []
    for line in out.splitlines():
        at = min((i for i in (line.find("FATAL:"), line.find("PANIC:")) if i >= 0), default=-1)
        if at < 0:
            continue
        message = " ".join(line[at:].split())[:240]
        if message in found:
            found.remove(message)
        found.append(message)
    return found


async def startup_errors(host: Host, version: int | str, cluster: str) -> list[str]:
    """The member's last FATAL/PANIC lines ([] when none or when they cannot be read)."""
    script = SCRIPT.replace("{keep}", str(KEEP * 2))
    try:
        out = await host.run(
            f"sh -c {shlex.quote(script)} sh {shlex.quote(server_log(version, cluster))}",
            check=False, label="postgres errors", timeout=30,
        )  # fmt: skip
    except HostError:
        return []
    return parse_errors(out.stdout)[-KEEP:]


def errors_suffix(errors: list[str]) -> str:
    """`` (its log: A | B)`` or ``""``, to append to a message."""
    return f" (its log: {' | '.join(errors)})" if errors else ""
