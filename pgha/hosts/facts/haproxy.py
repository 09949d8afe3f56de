"""Facts about HAProxy on a host: does a config file pass `haproxy -c`? Read-only.

Also the :class:`ConfigCheck` model that every "validate before install" check returns
(keepalived's lives in :mod:`pgha.hosts.facts.keepalived`).
"""

from __future__ import annotations

import re
import shlex

from pydantic import BaseModel, ConfigDict

from pgha.errors import HostError
from pgha.hosts.host import Host

#: Exit status of a shell that could not find the program.
NOT_FOUND = 127

# "[ALERT]    (2884) : config : parsing [/tmp/bad.cfg:2] : unknown keyword ..." -> the part
# after the pid; "[WARNING]" lines are kept too (a warning can explain an alert).
_HAPROXY_LINE = re.compile(r"^\[(?P<level>ALERT|WARNING)\]\s+\(\d+\)\s+:\s+(?P<text>.*)$")


class ProgramMissing(HostError):
    """A program pgha needs is not installed on the host. Permanent until packages are."""


class ConfigCheck(BaseModel):
    """What a program's own config check said about one file.

    ``messages`` are the program's error (and warning) lines, in its words, without
    timestamps or pids: what an operator needs to fix the file.
    """

    model_config = ConfigDict(frozen=True)

    path: str
    ok: bool
    messages: list[str] = []


def check_command(path: str) -> list[str]:
    return ["haproxy", "-c", "-f", path]


def parse_haproxy_check(path: str, exit_code: int, output: str) -> ConfigCheck:
    """Parse the merged stdout+stderr of `haproxy -c -f PATH`. Pure.

    haproxy 2.6 exits 0 and prints "Configuration file is valid" when the file is good;
    otherwise it exits non-zero with ``[ALERT]`` lines naming file, line and problem.
    """
    messages = [
        m.group("text").strip()
        for m in map(_HAPROXY_LINE.match, output.splitlines())
        if m is not None
    ]
    if exit_code == 0:
        return ConfigCheck(path=path, ok=True, messages=messages)
    if not messages:  # an error haproxy did not format (e.g. killed): keep its raw words
        messages = [line.strip() for line in output.splitlines() if line.strip()][-10:]
    return ConfigCheck(path=path, ok=False, messages=messages)


async def check_config(host: Host, path: str) -> ConfigCheck:
    """Ask the host's haproxy whether ``path`` is a valid configuration. Read-only.

    :raises ProgramMissing: haproxy is not installed.
    """
    # 2>&1: haproxy writes its verdict to stdout and its alerts to stderr.
    out = await host.run(
        f"{shlex.join(check_command(path))} 2>&1", check=False, label="haproxy -c", timeout=60
    )
    if out.exit_code == NOT_FOUND:
        raise ProgramMissing(
            host.name,
            f"host {host.name} ({host.address}): haproxy is not installed; the packages "
            "step installs it (run provision again, or `apt-get install haproxy`)",
        )
    return parse_haproxy_check(path, out.exit_code, out.stdout)
