"""Activities of reconfigure: compare the spec with what the DCS and the hosts hold (read
only), apply the DCS changes through `patronictl edit-config`, find and restart members
with a pending restart. Applying files reuses provision's converge activities, which
reload (never restart) the services that support it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import yaml
from temporalio import activity

from pgha.activities.cluster_secrets import render_secrets
from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import param, permanent, rendering
from pgha.activities.patroni import api_url, render
from pgha.checks.config_diff import (
    dcs_changes,
    edit_config_args,
    lowered_minimums,
    parameter_changes,
    parameter_name,
)
from pgha.errors import CommandFailed
from pgha.hosts.facts import patroni as patroni_facts
from pgha.hosts.facts.files import file_state
from pgha.hosts.facts.patroni import api_document, psql
from pgha.hosts.host import Host
from pgha.hosts.ops import patroni as ops
from pgha.reconfigure_models import FileChange, ReconfigurePlan, SettingChange
from pgha.render import RenderedFile
from pgha.render.haproxy import haproxy_cfg
from pgha.render.keepalived import keepalived_conf
from pgha.render.patroni import PATRONI_CONFIG_PATH, dynamic_config
from pgha.render.pgbackrest import pgbackrest_db_conf, pgbackrest_repo_conf
from pgha.render.pgbouncer import pgbouncer_ini
from pgha.spec import ClusterSpec, Role, WatchdogMode
from pgha.steps import HostStep, StepResult

#: After a DCS change, every member takes it at its next HA loop; pending_restart is set
#: then. Waited on top of loop_wait.
SETTLE_S = 5.0


def _yaml(text: str, where: str) -> dict[str, Any]:
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{where} is not a YAML mapping")
    return doc


def service_files(spec: ClusterSpec, host: str) -> list[tuple[str, RenderedFile]]:
    """The files of the services on ``host`` that reconfigure compares and applies with a
    reload: (service, file). Patroni's own file is compared separately."""
    roles = spec.host(host).roles
    out: list[tuple[str, RenderedFile]] = []
    with rendering():
        if Role.haproxy in roles:
            out.append(("haproxy", haproxy_cfg(spec)))
            secrets = render_secrets(spec, "keepalived_auth")
            out.append(("keepalived", keepalived_conf(spec, host, secrets)))
            if spec.pgbouncer.enabled:
                out.append(("pgbouncer", pgbouncer_ini(spec)))
        if spec.backup.enabled and Role.backup_repo in roles:
            out.append(("pgbackrest", pgbackrest_repo_conf(spec)))
        elif spec.backup.enabled and Role.postgres in roles:
            out.append(("pgbackrest", pgbackrest_db_conf(spec, host)))
    return out


def _parameters(config: dict[str, Any]) -> dict[str, Any]:
    return dict((config.get("postgresql") or {}).get("parameters") or {})


async def _member_file(
    host: Host, spec: ClusterSpec, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A member's Patroni config as it is on the host, and as the spec renders it (with the
    watchdog mode the host has: provision decided it from the hardware)."""
    out = await host.run(["cat", PATRONI_CONFIG_PATH], label="read patroni config")
    current = _yaml(out.stdout, f"{name}:{PATRONI_CONFIG_PATH}")
    mode = str((current.get("watchdog") or {}).get("mode", spec.watchdog.value))
    with rendering():
        wanted = render(spec, name, WatchdogMode(mode)).content
    return current, _yaml(wanted, f"the rendered {PATRONI_CONFIG_PATH} of {name}")


async def _restart_contexts(host: Host, spec: ClusterSpec, names: list[str]) -> set[str]:
    """Which of ``names`` PostgreSQL applies only at a restart (context postmaster)."""
    if not names:
        return set()
    quoted = ", ".join("'" + n.replace("'", "''") + "'" for n in names)
    sql = ("SELECT name FROM pg_catalog.pg_settings WHERE context = 'postmaster'"
           f" AND name IN ({quoted})")  # fmt: skip
    out = await host.run(psql(spec.postgres.port, sql), label="psql pg_settings")
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


@activity.defn(name="reconfigure.plan")
async def plan(step: HostStep) -> ReconfigurePlan:
    """What reconfigure would change, from ``step.host`` (a PostgreSQL member): the DCS's
    dynamic config against the spec's, each member's own parameters and Patroni file,
    and each service file. Read-only.

    :raises ApplicationError: NoLeader (non-retryable) without a running leader.
    """
    spec = step.spec
    changes: list[SettingChange] = []
    files: list[FileChange] = []
    async with heartbeating():
        async with open_host(step.target) as host:
            found = await patroni_facts.cluster(host, api_url(spec, step.host))
            leader = None if isinstance(found, str) else ops.leader_of(found)
            if leader is None:
                raise permanent(f"reconfigure needs a running leader; Patroni says: {found}",
                                "NoLeader")  # fmt: skip
        async with open_host(spec.target(leader.name)) as host:
            shown = await host.run(["patronictl", "-c", PATRONI_CONFIG_PATH, "show-config"],
                                   label="patronictl show-config")  # fmt: skip
            changes += dcs_changes(_yaml(shown.stdout, "patronictl show-config"),
                                   dynamic_config(spec))  # fmt: skip
        for h in spec.hosts:
            async with open_host(spec.target(h.name)) as host:
                if Role.postgres in h.roles:
                    current, wanted = await _member_file(host, spec, h.name)
                    changes += parameter_changes(h.name, _parameters(current),
                                                 _parameters(wanted))  # fmt: skip
                    if current != wanted:
                        files.append(FileChange(host=h.name, path=PATRONI_CONFIG_PATH,
                                                service="patroni"))  # fmt: skip
                for service, f in service_files(spec, h.name):
                    if (await file_state(host, f.path)).sha256 != f.sha256:
                        files.append(FileChange(host=h.name, path=f.path, service=service))
        names = sorted({n for c in changes if (n := parameter_name(c))})
        async with open_host(spec.target(leader.name)) as host:
            restart = await _restart_contexts(host, spec, names)
    changes = [c.model_copy(update={"restart": parameter_name(c) in restart}) for c in changes]
    return ReconfigurePlan(changes=changes, files=files, leader=leader.name,
                           lowered=lowered_minimums(changes))  # fmt: skip


@activity.defn(name="reconfigure.apply_dcs")
async def apply_dcs(step: HostStep) -> StepResult:
    """The DCS changes (``params["changes"]``, JSON list of SettingChange) through
    `patronictl edit-config` on ``step.host``: one compare-and-set write, refused when
    the config changed meanwhile. Idempotent: values already set change nothing."""
    raw = json.loads(param(step, "changes"))
    changes = [SettingChange.model_validate(c) for c in raw]
    if not changes:
        return StepResult(host=step.host, changed=False, summary="no DCS change")
    cmd = ["patronictl", "-c", PATRONI_CONFIG_PATH, "edit-config", step.spec.cluster,
           "--force", "--quiet", *edit_config_args(changes)]  # fmt: skip
    async with heartbeating(), open_host(step.target) as host:
        await host.run(cmd, label="patronictl edit-config")
    shown = ", ".join(f"{c.key}={c.new}" for c in changes)
    return StepResult(host=step.host, changed=True, summary=f"DCS: {shown}")


async def _pending(host: Host, spec: ClusterSpec, name: str) -> bool | None:
    """Whether Patroni on ``name`` reports a pending restart (None: no answer)."""
    doc = await api_document(host, f"{api_url(spec, name)}/patroni")
    return None if doc is None else bool(doc.get("pending_restart", False))


@activity.defn(name="reconfigure.pending_restarts")
async def pending_restarts(step: HostStep) -> list[str]:
    """The members whose Patroni reports a pending restart, after waiting for every member
    to take a reloaded file or a DCS change (loop_wait + a margin: Patroni applies both at
    its next HA loop) when ``params["expect"]`` is yes. Read-only.
    """
    spec = step.spec
    if step.params.get("expect") == "yes":
        deadline = time.monotonic() + spec.patroni.loop_wait + SETTLE_S
        while time.monotonic() < deadline:
            activity.heartbeat()
            await asyncio.sleep(1)
    pending: list[str] = []
    async with heartbeating():
        for h in spec.hosts_with(Role.postgres):
            async with open_host(spec.target(h.name)) as host:
                if await _pending(host, spec, h.name):
                    pending.append(h.name)
    return pending


@activity.defn(name="reconfigure.restart_pending")
async def restart_pending(step: HostStep) -> StepResult:
    """Restart ``step.host``'s PostgreSQL through Patroni if (and only if) it has a pending
    restart, then wait until Patroni reports none and PostgreSQL answers. Idempotent.

    :raises ApplicationError: RestartFailed (non-retryable) when it does not come back.
    """
    spec = step.spec
    within = float(step.params.get("within_s", "120"))
    async with heartbeating(), open_host(step.target) as host:
        if not await _pending(host, spec, step.host):
            return StepResult(host=step.host, changed=False, summary="no pending restart")
        cmd = ["patronictl", "-c", PATRONI_CONFIG_PATH, "restart", spec.cluster, step.host,
               "--pending", "--force"]  # fmt: skip
        said = await host.run(cmd, label="patronictl restart", timeout=within, check=False)
        deadline = time.monotonic() + within
        while True:
            pending = await _pending(host, spec, step.host)
            try:
                await host.run(psql(spec.postgres.port, "SELECT 1"), label="psql")
                up = True
            except CommandFailed:
                up = False
            if up and pending is False:
                break
            if time.monotonic() > deadline:
                tail = (said.stdout + said.stderr).strip()[-300:]
                raise permanent(
                    f"host {step.host}: PostgreSQL {'answers' if up else 'does not answer'} "
                    f"and Patroni reports {'a' if pending else 'no'} pending restart "
                    f"{within:g} s after `patronictl restart --pending` (it said: {tail}); "
                    "see /var/log/postgresql and `journalctl -u patroni` there",
                    "RestartFailed",
                )
            await asyncio.sleep(1)
    return StepResult(host=step.host, changed=True, summary="restarted (pending restart applied)")
