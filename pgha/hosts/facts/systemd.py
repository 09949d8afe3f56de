"""Facts about systemd units, as `systemctl show` reports them. Read-only: changes nothing."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from pgha.hosts.host import Host

#: The properties unit_state asks for. systemctl prints them in its own order, not this one.
UNIT_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "NeedDaemonReload",
)

#: Unit file states in which `systemctl enable` has nothing to do: the unit has no [Install]
#: section (static), comes from a generator, or exists only at run time.
NOT_ENABLEABLE = frozenset({"static", "generated", "transient"})

_UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.@\\-]+$")


class UnitState(BaseModel):
    """One unit as systemd sees it.

    ``unit`` is the name asked for; ``id`` the unit it resolves to (``sshd`` is an alias of
    ``ssh.service`` on Debian). A unit without a unit file has ``load_state`` ``not-found``
    and an empty ``unit_file_state``.
    """

    model_config = ConfigDict(frozen=True)

    unit: str
    id: str
    load_state: str
    active_state: str
    sub_state: str
    unit_file_state: str
    need_daemon_reload: bool

    @property
    def exists(self) -> bool:
        return self.load_state != "not-found"

    @property
    def active(self) -> bool:
        """Running (or reloading). ``activating`` is not yet running: start waits for it."""
        return self.active_state in ("active", "reloading")

    @property
    def stopped(self) -> bool:
        """Not running and not on its way up or down (``failed`` counts as stopped)."""
        return self.active_state in ("inactive", "failed")

    @property
    def enabled(self) -> bool:
        """Enabled persistently, so it starts at boot. ``enabled-runtime`` ends at reboot."""
        return self.unit_file_state == "enabled"

    @property
    def enableable(self) -> bool:
        """Whether `systemctl enable` means anything for this unit."""
        return self.unit_file_state not in NOT_ENABLEABLE


def check_unit_name(unit: str) -> str:
    """Return ``unit`` if it is a plausible unit name, else raise ValueError.

    Rejects names starting with ``-`` so a unit can never be read as a systemctl option.
    """
    if not _UNIT_NAME.match(unit) or unit.startswith("-"):
        raise ValueError(f"not a systemd unit name: {unit!r}")
    return unit


def show_command(unit: str) -> list[str]:
    return ["systemctl", "show", "-p", ",".join(UNIT_PROPERTIES), check_unit_name(unit)]


def parse_unit_state(stdout: str, unit: str) -> UnitState:
    """Parse `systemctl show -p ...` output (``Key=value`` lines). Pure.

    :raises ValueError: when a property is missing (not systemctl output).
    """
    props: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    missing = [p for p in UNIT_PROPERTIES if p not in props]
    if missing:
        raise ValueError(
            f"systemctl show {unit}: no {', '.join(missing)} in the output: {stdout[:200]!r}"
        )
    return UnitState(
        unit=unit,
        id=props["Id"],
        load_state=props["LoadState"],
        active_state=props["ActiveState"],
        sub_state=props["SubState"],
        unit_file_state=props["UnitFileState"],
        need_daemon_reload=props["NeedDaemonReload"] == "yes",
    )


async def unit_state(host: Host, unit: str) -> UnitState:
    """The state of one unit. Read-only.

    :raises CommandFailed: when systemctl fails, e.g. systemd is not PID 1.
    """
    out = await host.run(show_command(unit), label="systemctl show")
    return parse_unit_state(out.stdout, unit)
