"""Facts about Debian packages: which are installed, at which version. Read-only."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pgha.errors import CommandFailed
from pgha.hosts.host import Host, stderr_tail

#: dpkg-query expands the \t and \n itself.
DPKG_FORMAT = r"${Package}\t${Version}\t${db:Status-Abbrev}\n"

#: Debian policy 5.6.1, plus an optional ``:arch`` qualifier. It also keeps dpkg-query's glob
#: characters (``*?[``) out, so a name can never match more packages than itself.
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")

#: Second letter of db:Status-Abbrev: i = installed; W and t = installed, triggers pending.
_INSTALLED_STATUS = frozenset("iWt")

_NOT_FOUND = "dpkg-query: no packages found matching "


def check_package_name(name: str) -> str:
    """Return ``name`` if it is a valid Debian package name, else raise ValueError."""
    if not _PACKAGE_NAME.match(name):
        raise ValueError(f"not a Debian package name: {name!r}")
    return name


def parse_dpkg_query(stdout: str) -> dict[str, str | None]:
    """Parse ``dpkg-query -W -f=DPKG_FORMAT`` output: package -> installed version or None.

    Pure. A package dpkg knows but that is not installed (``un``, ``rc``: removed with its
    config files left, half-installed...) maps to None. With several architectures of one
    package, an installed one wins.
    """
    found: dict[str, str | None] = {}
    for line in stdout.splitlines():
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        name, version, status = fields
        installed = len(status) >= 2 and status[1] in _INSTALLED_STATUS
        if installed and version:
            found[name] = version
        else:
            found.setdefault(name, None)
    return found


def unknown_names(stderr: str) -> list[str]:
    """Names dpkg-query reported as unknown (it exits 1 for those)."""
    return [
        line.removeprefix(_NOT_FOUND).strip()
        for line in stderr.splitlines()
        if line.startswith(_NOT_FOUND)
    ]


async def installed_packages(host: Host, names: Sequence[str]) -> dict[str, str | None]:
    """The installed version of each package, or None when it is not installed.

    Read-only. A name with an ``:arch`` qualifier is looked up without it.

    :raises ValueError: a name is not a valid package name.
    :raises CommandFailed: dpkg-query failed for another reason than unknown names.
    """
    for n in names:
        check_package_name(n)
    if not names:
        return {}
    bases = sorted({n.split(":", 1)[0] for n in names})
    out = await host.run(
        ["dpkg-query", "-W", f"--showformat={DPKG_FORMAT}", "--", *bases],
        check=False,
        label="dpkg-query",
    )
    # Exit 1 with only "no packages found matching X" lines is an answer, not a failure.
    other = [ln for ln in out.stderr.splitlines() if ln.strip() and not ln.startswith(_NOT_FOUND)]
    if not (out.exit_code == 0 or (out.exit_code == 1 and not other)):
        raise CommandFailed(
            host.name, host.address, out.command, out.exit_code, stderr_tail(out.stderr)
        )
    found = parse_dpkg_query(out.stdout)
    return {n: found.get(n.split(":", 1)[0]) for n in names}
