"""Converge HAProxy on a proxy host: a validated haproxy.cfg, the unit running, hitless reloads.

Also the two pieces keepalived and pgbouncer reuse (they would sit better in ops/files.py
and ops/systemd.py; kept here while those modules have another owner):

- :func:`ensure_service_file` installs a config only after the program's own check
  approved it, so a bad file never replaces the running one;
- :func:`ensure_service` starts the unit, or reloads it when one of its files changed
  (restarts it only for a file a reload cannot apply, such as a systemd drop-in). The
  "pending" marker is created *before* the file changes and removed only after the
  reload, so a crash in between still reloads on the next run; it lives under /run, so a
  reboot (which starts the service on the new file) forgets it.
"""

from __future__ import annotations

import asyncio
import posixpath
import shlex
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from pgha.errors import CommandFailed, HostError
from pgha.hosts.facts import systemd as unit_facts
from pgha.hosts.facts.files import file_state
from pgha.hosts.facts.haproxy import ConfigCheck, ProgramMissing, check_config
from pgha.hosts.facts.system import Listener, listening_ports
from pgha.hosts.host import Host
from pgha.hosts.ops.files import ensure_file
from pgha.hosts.ops.systemd import daemon_reload, ensure_unit
from pgha.hosts.result import Outcome, combine
from pgha.render.files import RenderedFile

HAPROXY_UNIT = "haproxy"
#: Where the "reload/restart pending" markers live: tmpfs, emptied by a reboot.
PENDING_DIR = "/run/pgha"
#: How long a started or reloaded service may take to listen on its ports.
LISTEN_WITHIN_S = 15.0
JOURNAL_LINES = 15

ConfigChecker = Callable[[Host, str], Awaitable[ConfigCheck]]


class ConfigRejected(HostError):
    """The program's own check refused a rendered config; the running one was kept.
    Permanent: the same spec renders the same file."""


class ServiceFailed(HostError):
    """A unit did not start, reload or listen. Permanent until an operator fixes the cause
    (a port taken by something else, a resource limit); the message carries its log."""


Apply = Literal["reload", "restart"]


def pending_marker(unit: str, apply: Apply = "reload") -> str:
    return f"{PENDING_DIR}/{unit}.{apply}-pending"


def candidate_path(path: str) -> str:
    """Where a config waits for its check: beside the live one (same filesystem, so the
    install is a rename), hidden, and under a fixed name a later run overwrites."""
    d, name = posixpath.split(path)
    return posixpath.join(d, f".{name}.pgha-candidate")


def rejected(host: Host, program: str, path: str, check: ConfigCheck) -> ConfigRejected:
    said = "\n".join(f"  {m}" for m in check.messages) or "  (no message)"
    return ConfigRejected(
        host.name,
        f"host {host.name} ({host.address}): {program} rejects the new {path}; the running "
        f"configuration was kept. {program} said:\n{said}\nThe file is rendered from the "
        "cluster spec: fix the setting it names and run the step again.",
    )


async def ensure_service_file(
    host: Host,
    want: RenderedFile,
    *,
    unit: str,
    check: ConfigChecker | None = None,
    program: str = "",
    apply: Apply = "reload",
) -> Outcome:
    """Make ``want.path`` hold ``want.content`` (mode, owner), marking ``unit`` for a reload
    (or a restart, with ``apply``) when the content changes. Idempotent.

    With ``check``, the new content is first written to :func:`candidate_path` and checked
    there; only an approved candidate is renamed over the live file.

    :param program: the checking program's name, for messages.
    :raises ConfigRejected: the check refused the candidate (removed again).
    :raises ProgramMissing: the checking program is not installed.
    """
    state = await file_state(host, want.path)
    if state.kind == "file" and state.sha256 == want.sha256:
        # Same content: at most mode or owner differ, which no service needs reloading for.
        return await ensure_file(
            host, want.path, want.content, mode=want.mode, owner=want.owner, group=want.group
        )
    marker = pending_marker(unit, apply)
    mark = f"mkdir -p {PENDING_DIR} && touch {shlex.quote(marker)}"
    if check is None:
        await host.run(mark, label="mark-reload")
        wrote = await ensure_file(
            host, want.path, want.content, mode=want.mode, owner=want.owner, group=want.group
        )
        return Outcome.made(wrote.summary, [mark, *wrote.commands])
    candidate = candidate_path(want.path)
    staged = await ensure_file(
        host, candidate, want.content, mode=want.mode, owner=want.owner, group=want.group
    )
    verdict = await check(host, candidate)
    if not verdict.ok:
        await host.run(["rm", "-f", "--", candidate], label="rm-candidate")
        raise rejected(host, program or unit, want.path, verdict)
    install = f"{mark} && mv -fT {shlex.quote(candidate)} {shlex.quote(want.path)}"
    await host.run(install, label="install-config")
    why = "created" if not state.exists else "replaced"
    return Outcome.made(
        f"{why} {want.path} after `{program or unit}` approved it ({len(want.content)} bytes)",
        [*staged.commands, install],
    )


async def journal_tail(host: Host, unit: str) -> str:
    """The unit's last log lines, for an error message. Best effort: never raises."""
    try:
        out = await host.run(
            ["journalctl", "-u", unit, "-n", str(JOURNAL_LINES), "--no-pager", "-o", "cat"],
            check=False,
            label="journalctl",
            timeout=30,
        )
    except HostError:
        return "(its log could not be read)"
    return out.stdout.strip() or "(its log is empty)"


async def service_failed(host: Host, unit: str, what: str, detail: str = "") -> ServiceFailed:
    log = await journal_tail(host, unit)
    return ServiceFailed(
        host.name,
        f"host {host.name} ({host.address}): {what}{detail}. The log of {unit} ends with:\n"
        f"{log}\nFix the cause (a port taken by another process? see `ss -ltnp`) and run "
        "the step again.",
    )


async def _not_served(host: Host, ports: Sequence[int], program: str) -> dict[int, Listener | None]:
    """The ports in ``ports`` that ``program`` does not listen on: held by another process
    (its Listener) or by nothing (None).

    A listener whose process ss cannot name counts as the program's: root without
    CAP_SYS_PTRACE (a container) cannot see the sockets of a process that dropped
    privileges, such as HAProxy's workers.
    """
    found = {lst.port: lst for lst in await listening_ports(host)}
    return {
        p: found.get(p) for p in ports if p not in found or found[p].process not in (None, program)
    }


async def wait_listening(
    host: Host, unit: str, ports: Sequence[int], program: str, within: float = LISTEN_WITHIN_S
) -> None:
    """Wait (bounded) until ``program`` listens on every port in ``ports``.

    :raises ServiceFailed: some port is missing or held by another process at the end.
    """
    deadline = time.monotonic() + within
    while True:
        wrong = await _not_served(host, ports, program)
        if not wrong:
            return
        if time.monotonic() > deadline:
            held = [
                f"{p} is held by {lst.process} (pid {lst.pid})"
                if lst is not None
                else f"{p} has no listener"
                for p, lst in wrong.items()
            ]
            raise await service_failed(
                host,
                unit,
                f"{program} does not listen on every port it should within {within:g} s",
                f" ({'; '.join(held)})",
            )
        await asyncio.sleep(0.5)


async def ensure_service(
    host: Host, unit: str, *, ports: Sequence[int] = (), program: str = ""
) -> Outcome:
    """Keep ``unit`` running and enabled; apply files changed for it. Idempotent.

    A stopped unit is started (it reads the new files anyway); a running one is reloaded
    when a file marked it so, restarted only when a file marked it for a restart (a
    systemd drop-in: a reload cannot apply it), and left alone otherwise.

    :param ports: TCP ports the service must listen on afterwards (checked when it was
        started or reloaded here).
    :param program: the process name that must hold ``ports``.
    :raises ProgramMissing: the unit does not exist (package not installed).
    :raises ServiceFailed: start or reload failed, or the ports are not served.
    """
    state = await unit_facts.unit_state(host, unit)
    if not state.exists:
        raise ProgramMissing(
            host.name,
            f"host {host.name} ({host.address}): there is no {unit}.service; the packages "
            f"step installs it (run provision again)",
        )
    markers = {a: pending_marker(unit, a) for a in ("restart", "reload")}
    probe = await host.run(
        " ; ".join(f"test -e {shlex.quote(m)} && echo {a}" for a, m in markers.items()),
        check=False,
        label="pending?",
    )
    pending = set(probe.stdout.split())
    done: list[Outcome] = []
    if state.need_daemon_reload or "restart" in pending:
        # A unit file or drop-in changed: systemd must read it before the (re)start. A new
        # drop-in *directory* does not set NeedDaemonReload (systemd 252), hence the marker.
        done.append(await daemon_reload(host))
    apply = next((a for a in ("restart", "reload") if a in pending), None)
    if apply is not None and state.active:
        cmd = ["systemctl", apply, unit]
        try:
            await host.run(cmd, timeout=120)
        except CommandFailed as err:
            raise await service_failed(host, unit, f"`systemctl {apply} {unit}` failed") from err
        done.append(
            Outcome.made(f"{apply}ed {unit} (its configuration changed)", [shlex.join(cmd)])
        )
    try:
        done.append(await ensure_unit(host, unit, running=True, enabled=True))
    except CommandFailed as err:
        raise await service_failed(host, unit, f"{unit} did not start") from err
    if pending:
        await host.run(["rm", "-f", *markers.values()], label="clear-pending")
    outcome = combine(*done)
    if ports and outcome.changed:
        await wait_listening(host, unit, ports, program or unit)
    return outcome


async def ensure_haproxy(host: Host, config: RenderedFile, ports: Sequence[int]) -> Outcome:
    """haproxy.cfg as rendered (checked by `haproxy -c` first), HAProxy running and enabled,
    reloaded (hitless: the master hands the listeners to a new worker) when the file changed.

    Idempotent: a converged host runs only reads.

    :param ports: the ports haproxy.cfg binds; checked after a start or reload.
    :raises ConfigRejected: haproxy refused the rendered file; the running one was kept.
    :raises ProgramMissing: haproxy is not installed.
    :raises ServiceFailed: HAProxy did not start, reload or bind its ports.
    """
    wrote = await ensure_service_file(
        host, config, unit=HAPROXY_UNIT, check=check_config, program="haproxy -c"
    )
    running = await ensure_service(host, HAPROXY_UNIT, ports=ports, program="haproxy")
    return combine(wrote, running)


__all__ = [
    "ConfigRejected",
    "ProgramMissing",
    "ServiceFailed",
    "candidate_path",
    "ensure_haproxy",
    "ensure_service",
    "ensure_service_file",
    "pending_marker",
]
