"""Converge systemd units (running/stopped, enabled/disabled) and reload unit files; no config."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pgha.hosts.facts import systemd as facts
from pgha.hosts.host import Host, render_command
from pgha.hosts.result import Outcome

_DONE = {"start": "started", "stop": "stopped", "enable": "enabled", "disable": "disabled"}


async def ensure_unit(host: Host, unit: str, *, running: bool, enabled: bool) -> Outcome:
    """Bring the unit to the wanted state. Never restarts a unit that is already running.

    Idempotent. Starts before enabling and stops before disabling, as STYLE.md shows. A
    static unit (no [Install] section) counts as enabled and as disabled: there is nothing
    to switch. A unit that does not exist is "stopped and disabled" already.

    :param running: start it when it is not running, or stop it when it is.
    :param enabled: enable it (persistently) or disable it.
    :raises CommandFailed: systemctl refused, e.g. the unit is masked or does not exist
        but was asked to run; systemd's own message is in the error.
    """
    state = await facts.unit_state(host, unit)
    if not state.exists and not running and not enabled:
        return Outcome.unchanged(f"{unit} is not installed, so it is neither running nor enabled")
    todo: list[list[str]] = []
    if running and not state.active:
        todo.append(["systemctl", "start", unit])
    if not running and not state.stopped:
        todo.append(["systemctl", "stop", unit])
    if state.enableable:
        if enabled and not state.enabled:
            todo.append(["systemctl", "enable", unit])
        if not enabled and state.unit_file_state == "enabled":
            todo.append(["systemctl", "disable", unit])
        if not enabled and state.unit_file_state == "enabled-runtime":
            # A plain `disable` leaves the /run symlinks of `enable --runtime` in place.
            todo.append(["systemctl", "disable", "--runtime", unit])
    if not todo:
        how = "running" if running else "stopped"
        if state.enableable:
            return Outcome.unchanged(f"{unit} is {how} and {'en' if enabled else 'dis'}abled")
        return Outcome.unchanged(
            f"{unit} is {how}; it is {state.unit_file_state}, so there is nothing to "
            f"{'en' if enabled else 'dis'}able"
        )
    await host.run_all(todo)
    done = ", ".join(_DONE[c[1]] for c in todo)
    return Outcome.made(f"{unit}: {done}", [render_command(c) for c in todo])


async def daemon_reload(host: Host, units: Sequence[str] = ()) -> Outcome:
    """Make systemd re-read unit files: after writing or changing one.

    Idempotent when ``units`` is given: reloads only when systemd reports that one of them
    changed on disk since it was loaded (``NeedDaemonReload``); systemd loads a brand-new
    unit file on first use by itself. Without ``units`` it always reloads.

    :param units: the units whose files the caller wrote.
    """
    if isinstance(units, str):  # a str is a Sequence[str] too: one unit, not its letters
        units = [units]
    if units:
        states = await asyncio.gather(*(facts.unit_state(host, u) for u in units))
        stale = [s.unit for s in states if s.need_daemon_reload]
        if not stale:
            return Outcome.unchanged(
                f"systemd has already loaded the current unit files of {', '.join(units)}"
            )
        why = f"unit files changed on disk: {', '.join(stale)}"
    else:
        why = "reload requested"
    cmd = ["systemctl", "daemon-reload"]
    await host.run(cmd)
    return Outcome.made(f"reloaded systemd ({why})", [render_command(cmd)])
