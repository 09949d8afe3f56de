"""Which versions of a package the host's apt sources offer, and which one an operator
meant by "15.20". Read-only.

Operators ask for upstream versions (PostgreSQL 15.20); apt installs Debian versions
(15.20-0+deb12u1). The mapping is read from the host's own sources (`apt-cache madison`),
so a mirror or a security repository that carries another revision is honoured.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pgha.hosts.facts.packages import check_package_name
from pgha.hosts.host import Host


class VersionNotAvailable(ValueError):
    """The version asked for is not in the host's apt sources."""


def upstream(debian_version: str) -> str:
    """15.20-0+deb12u1 -> 15.20; 1:2.3-1 -> 2.3; a version without a revision is itself."""
    bare = debian_version.split(":", 1)[1] if ":" in debian_version else debian_version
    return bare.rsplit("-", 1)[0] if "-" in bare else bare


def parse_madison(stdout: str, name: str) -> list[str]:
    """The versions of ``name`` in `apt-cache madison` output, as listed (newest first),
    each once."""
    found: list[str] = []
    for line in stdout.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 2 and parts[0] == name and parts[1] and parts[1] not in found:
            found.append(parts[1])
    return found


def pick_version(name: str, asked: str, available: Sequence[str], host: str) -> str:
    """The Debian version of ``name`` that ``asked`` means: itself when it is one of
    ``available``, else the first (newest) whose upstream version is ``asked``.

    :raises VersionNotAvailable: none matches; the message lists what there is.
    """
    if asked in available:
        return asked
    for v in available:
        if upstream(v) == asked:
            return v
    offered = ", ".join(available) or "none"
    raise VersionNotAvailable(
        f"{name} {asked} is not in the apt sources of host {host} (they offer: {offered}); "
        "ask for one of those, or add the repository that has it (packages.mirror in the spec)"
    )


def madison_command(names: Sequence[str]) -> list[str]:
    return ["apt-cache", "madison", *(check_package_name(n) for n in names)]


async def available_versions(host: Host, names: Sequence[str]) -> dict[str, list[str]]:
    """Package -> versions the host's apt lists offer (after whatever `apt-get update` ran
    last; callers that need fresh lists update first)."""
    out = await host.run(madison_command(names), label="apt-cache madison")
    return {n: parse_madison(out.stdout, n) for n in names}


async def is_lower(host: Host, a: str, b: str) -> bool:
    """Whether Debian version ``a`` sorts before ``b`` (dpkg's own comparison)."""
    out = await host.run(
        f"dpkg --compare-versions {shlex.quote(a)} lt {shlex.quote(b)} && echo yes || echo no",
        label="dpkg --compare-versions",
    )
    return out.stdout.strip() == "yes"
