"""Activities of rolling operations (upgrade): resolve the versions asked for, gate on long
transactions, drain a member, install its packages, restart it through Patroni, read what
each member runs. Each is idempotent, so a retry or a resumed workflow repeats nothing that
already happened.
"""

from __future__ import annotations

import asyncio
import json
import time

from temporalio import activity

from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import param, permanent, step_result, translated
from pgha.activities.patroni import api_url, as_config_file, render
from pgha.errors import CommandFailed
from pgha.hosts.facts import patroni as patroni_facts
from pgha.hosts.facts.apt_versions import (
    VersionNotAvailable,
    available_versions,
    is_lower,
    pick_version,
)
from pgha.hosts.facts.long_transactions import describe, long_transactions
from pgha.hosts.facts.packages import installed_packages
from pgha.hosts.facts.patroni import psql
from pgha.hosts.facts.postgres_errors import errors_suffix, startup_errors
from pgha.hosts.host import Host
from pgha.hosts.ops import patroni as ops
from pgha.hosts.ops.packages import ensure_packages, refresh_lists
from pgha.hosts.result import Outcome
from pgha.render.patroni import PATRONI_CONFIG_PATH, bin_dir
from pgha.rolling_models import MemberVersions, ResolvedVersions
from pgha.spec import ClusterSpec, Role, WatchdogMode
from pgha.steps import HostStep, StepResult

#: How long a member's new tags may take to reach the DCS after a reload, on top of
#: Patroni's loop_wait (it writes its member key once per HA loop).
TAGS_WAIT_S = 30.0


def _packages(step: HostStep) -> dict[str, str]:
    """The packages and versions the workflow passed (JSON in ``params["packages"]``)."""
    try:
        wanted = json.loads(param(step, "packages"))
    except json.JSONDecodeError:
        raise permanent(
            f"params['packages'] is not JSON: {step.params}", "InvalidStepInput"
        ) from None
    if not isinstance(wanted, dict) or not all(isinstance(v, str) for v in wanted.values()):
        raise permanent(f"params['packages'] is not a name -> version map: {wanted}",
                        "InvalidStepInput")  # fmt: skip
    return {str(k): v for k, v in wanted.items()}


@activity.defn(name="rolling.resolve_versions")
async def resolve_versions(step: HostStep) -> ResolvedVersions:
    """The exact Debian version of each package asked for (``params["packages"]``, JSON of
    name -> "15.20" or an exact version), from ``step.host``'s apt sources after an
    `apt-get update`; and what that host has installed.

    :raises ApplicationError: VersionNotAvailable, DowngradeRefused (a lower version
        without ``params["allow_downgrade"]``), PinConflict (the spec pins another
        version, which a later provision would put back); all non-retryable.
    """
    spec, asked = step.spec, _packages(step)
    allow_down = step.params.get("allow_downgrade") == "yes"
    async with heartbeating(), open_host(step.target) as host:
        await refresh_lists(host, spec.packages.apt_proxy)
        offered = await available_versions(host, list(asked))
        with_translation = translated(VersionNotAvailable, render_errors=False)
        async with with_translation:
            target = {n: pick_version(n, v, offered[n], step.host) for n, v in asked.items()}
        have = await installed_packages(host, list(asked))
        for name, version in target.items():
            pinned = spec.packages.pins.get(name)
            if pinned and pinned.removeprefix("0:") != version.removeprefix("0:"):
                raise permanent(
                    f"packages.pins in the spec of cluster {spec.cluster} pins {name} to "
                    f"{pinned}; a later provision would put that back. Change the pin to "
                    f"{version} (or remove it), then run the upgrade again", "PinConflict",
                )  # fmt: skip
            now = have.get(name)
            if now and not allow_down and await is_lower(host, version, now):
                raise permanent(
                    f"{name} {version} is older than the {now} installed on {step.host}; a "
                    "downgrade needs --allow-downgrade", "DowngradeRefused",
                )  # fmt: skip
    return ResolvedVersions(target=target, installed={n: v for n, v in have.items() if v})


@activity.defn(name="rolling.long_transactions")
async def gate_long_transactions(step: HostStep) -> StepResult:
    """Refuse while a client transaction on ``step.host`` has been open longer than
    ``params["older_than_s"]``: a restart or switchover would cut it off.

    :raises ApplicationError: LongTransactions (non-retryable), naming each one.
    """
    older = int(param(step, "older_than_s"))
    async with heartbeating(), open_host(step.target) as host:
        found = await long_transactions(host, step.spec.postgres.port, older)
    if found:
        raise permanent(
            f"{len(found)} transaction(s) open longer than {older} s would be cut off:\n"
            f"{describe(step.host, found)}\nEnd them or wait, then run the operation again",
            "LongTransactions",
        )
    return StepResult(host=step.host, changed=False,
                      summary=f"no client transaction open longer than {older} s")  # fmt: skip


@activity.defn(name="rolling.set_drained")
async def set_drained(step: HostStep) -> StepResult:
    """Tag ``step.host`` nofailover + noloadbalance (``params["drained"]`` yes) or untag it
    (no) in Patroni's config, reload Patroni, and wait until the DCS shows the tags: from
    then on Patroni promotes it not, HAProxy's read-only check skips it, and (undrained)
    a switchover may pick it. Idempotent.
    """
    drained = param(step, "drained") == "yes"
    spec = step.spec
    async with heartbeating(), open_host(step.target) as host:
        mode, _, _ = await ops.ensure_watchdog(host, spec.watchdog.value)
        config = as_config_file(render(spec, step.host, WatchdogMode(mode), drained=drained))
        outcome = await ops.ensure_config(host, config)
        await _wait_tags(host, spec, step.host, drained)
    word = "drained (nofailover, noloadbalance)" if drained else "back in service"
    return step_result(step.host, [outcome if outcome.changed else Outcome.unchanged(word)],
                       facts={"drained": drained})  # fmt: skip


async def _wait_tags(host: Host, spec: ClusterSpec, name: str, drained: bool) -> None:
    """Until the member's tags are in the DCS, not only in its own API: Patroni writes its
    member key at its next HA loop (up to loop_wait after the reload), and patronictl,
    the switchover and the other members read the DCS. A switchover to a member whose
    key still says nofailover fails with "Member ... does not exist"."""
    within = TAGS_WAIT_S + spec.patroni.loop_wait
    deadline = time.monotonic() + within
    seen = "no answer"
    while time.monotonic() < deadline:
        found = await patroni_facts.cluster(host, api_url(spec, name))
        me = None if isinstance(found, str) else next((m for m in found if m.name == name), None)
        if me is not None and all(
            bool(me.tags.get(t)) == drained for t in ("nofailover", "noloadbalance")
        ):
            return
        seen = found if isinstance(found, str) else f"tags {me.tags if me else 'absent'}"
        await asyncio.sleep(1)
    raise RuntimeError(
        f"host {name}: the {'drain' if drained else 'undrain'} tags did not reach the DCS "
        f"within {within:g} s after a reload (last seen: {seen}); see `journalctl -u "
        f"patroni` and {PATRONI_CONFIG_PATH}"
    )


@activity.defn(name="rolling.switchover")
async def switchover(step: HostStep) -> StepResult:
    """Hand the primary role from ``step.host`` to ``params["candidate"]`` through
    Patroni. Idempotent: when the candidate already leads (a retry after a switchover
    whose answer was lost) it does nothing.

    :raises ApplicationError: SwitchoverConflict (non-retryable) when a third member leads.
    """
    candidate = param(step, "candidate")
    spec = step.spec
    async with heartbeating(), open_host(step.target) as host:
        found = await patroni_facts.cluster(host, api_url(spec, step.host))
        if isinstance(found, str):
            raise RuntimeError(f"host {step.host}: Patroni's API does not answer: {found}")
        leader = ops.leader_of(found)
        if leader is not None and leader.name == candidate:
            return StepResult(host=step.host, changed=False, summary=f"{candidate} leads already")
        if leader is None or leader.name != step.host:
            raise permanent(
                f"the switchover {step.host} -> {candidate} is off: "
                f"{leader.name if leader else 'no member'} leads now", "SwitchoverConflict",
            )  # fmt: skip
        cmd = ["patronictl", "-c", PATRONI_CONFIG_PATH, "switchover", "--leader", step.host,
               "--candidate", candidate, "--force"]  # fmt: skip
        await host.run(cmd, label="patronictl switchover", timeout=120)
    return StepResult(host=step.host, changed=True, summary=f"switchover {step.host} -> "
                      f"{candidate}")  # fmt: skip


@activity.defn(name="rolling.install")
async def install(step: HostStep) -> StepResult:
    """The packages at the exact versions of ``params["packages"]`` (JSON) on
    ``step.host``; apt runs only for those at another version. The running PostgreSQL keeps
    its old binary until its restart."""
    wanted = _packages(step)
    async with heartbeating(), open_host(step.target) as host:
        outcome = await ensure_packages(host, dict(wanted), env_proxy=step.spec.packages.apt_proxy)
    return step_result(step.host, [outcome])


async def _server_version(host: Host, spec: ClusterSpec) -> str:
    """What the running PostgreSQL says it is (15.20), empty when it does not answer."""
    try:
        out = await host.run(psql(spec.postgres.port, "SHOW server_version"), label="psql")
    except CommandFailed:
        return ""
    return out.stdout.strip().split(" ", 1)[0]


async def _binary_version(host: Host, spec: ClusterSpec) -> str:
    """What the installed postgres binary is (15.20)."""
    out = await host.run([f"{bin_dir(spec)}/postgres", "--version"], label="postgres --version")
    # "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    words = out.stdout.split()
    return words[2] if len(words) > 2 else out.stdout.strip()


@activity.defn(name="rolling.restart")
async def restart(step: HostStep) -> StepResult:
    """Restart ``step.host``'s PostgreSQL through Patroni when it runs another version than
    its installed binary (idempotent: a retry after the restart does nothing): CHECKPOINT
    first so the shutdown checkpoint is short, then `patronictl restart`, then wait until
    it answers with the installed version.

    :raises ApplicationError: RestartFailed (non-retryable) when PostgreSQL does not come
        back with the installed version: the workflow stops at this member.
    """
    spec = step.spec
    within = float(step.params.get("within_s", "120"))
    async with heartbeating(), open_host(step.target) as host:
        binary = await _binary_version(host, spec)
        running = await _server_version(host, spec)
        if running == binary:
            already = Outcome.unchanged(f"PostgreSQL already runs {binary}")
            return step_result(step.host, [already])
        if running:  # a short shutdown checkpoint; a replica makes it a restartpoint
            await host.run(psql(spec.postgres.port, "CHECKPOINT"), label="checkpoint",
                           timeout=600)  # fmt: skip
        cmd = ["patronictl", "-c", PATRONI_CONFIG_PATH, "restart", spec.cluster, step.host,
               "--force"]  # fmt: skip
        out = await host.run(cmd, label="patronictl restart", timeout=within, check=False)
        deadline = time.monotonic() + within
        while (now := await _server_version(host, spec)) != binary:
            if time.monotonic() > deadline:
                said = (out.stdout + out.stderr).strip()[-300:]
                why = errors_suffix(await startup_errors(host, spec.postgres.version,
                                                    spec.cluster))  # fmt: skip
                raise permanent(
                    f"host {step.host}: PostgreSQL did not come back with {binary} within "
                    f"{within:g} s of `patronictl restart` (it answers "
                    f"{now or 'nothing'}; patronictl said: {said}){why}; see "
                    "/var/log/postgresql and `journalctl -u patroni` there", "RestartFailed",
                )  # fmt: skip
            await asyncio.sleep(1)
    return step_result(step.host, [Outcome.made(f"restarted PostgreSQL: {running or '?'} -> "
                                                f"{binary}", [" ".join(cmd)])])  # fmt: skip


@activity.defn(name="rolling.versions")
async def versions(step: HostStep) -> list[MemberVersions]:
    """What every PostgreSQL host runs and has installed, for the packages named in
    ``params["names"]`` (comma-separated). Read-only."""
    names = [n for n in param(step, "names").split(",") if n]
    out: list[MemberVersions] = []
    async with heartbeating():
        for h in step.spec.hosts_with(Role.postgres):
            async with open_host(step.spec.target(h.name)) as host:
                running = await _server_version(host, step.spec)
                have = await installed_packages(host, names)
            out.append(MemberVersions(member=h.name, server=running,
                                      packages={n: v for n, v in have.items() if v}))  # fmt: skip
    return out


@activity.defn(name="rolling.restart_units")
async def restart_units(step: HostStep) -> StepResult:
    """`systemctl restart` of ``params["units"]`` (space-separated) on ``step.host``, then
    each must be active: a new binary takes effect. For services the workflow has taken
    out of the traffic path first (a proxy without the VIP)."""
    units = param(step, "units").split()
    async with heartbeating(), open_host(step.target) as host:
        await host.run(["systemctl", "restart", *units], label="systemctl restart", timeout=120)
        out = await host.run(["systemctl", "is-active", *units], check=False, label="is-active")
    states = out.stdout.split()
    if any(s != "active" for s in states):
        seen = dict(zip(units, states, strict=False))
        raise permanent(f"host {step.host}: after a restart {seen}; see `journalctl -u` for "
                        "each", "RestartFailed")  # fmt: skip
    return StepResult(host=step.host, changed=True, summary=f"restarted {' '.join(units)}")


@activity.defn(name="rolling.package_versions")
async def package_versions(step: HostStep) -> StepResult:
    """The installed versions of ``params["names"]`` (comma-separated) on ``step.host``.
    Read-only. facts: {name: version or ""}."""
    names = [n for n in param(step, "names").split(",") if n]
    async with heartbeating(), open_host(step.target) as host:
        have = await installed_packages(host, names)
    shown = ", ".join(f"{n} {v or 'absent'}" for n, v in have.items())
    return StepResult(host=step.host, changed=False, summary=shown,
                      facts={n: v or "" for n, v in have.items()})  # fmt: skip


async def _paused(host: Host, spec: ClusterSpec, name: str) -> bool | None:
    """Whether the cluster is in maintenance mode (Patroni's /cluster says pause), None
    when the API does not answer."""
    doc = await patroni_facts.api_document(host, f"{api_url(spec, name)}/cluster")
    return None if doc is None else bool(doc.get("pause", False))


@activity.defn(name="rolling.set_pause")
async def set_pause(step: HostStep) -> StepResult:
    """Patroni's maintenance mode on (``params["paused"]`` yes) or off, through
    `patronictl pause|resume --wait` on ``step.host``: paused, Patroni neither fails over
    nor stops PostgreSQL when it stops itself. Idempotent."""
    want = param(step, "paused") == "yes"
    spec = step.spec
    async with heartbeating(), open_host(step.target) as host:
        if await _paused(host, spec, step.host) == want:
            already = f"cluster {'paused' if want else 'not paused'} already"
            return StepResult(host=step.host, changed=False, summary=already)
        verb = "pause" if want else "resume"
        await host.run(["patronictl", "-c", PATRONI_CONFIG_PATH, verb, spec.cluster, "--wait"],
                       label=f"patronictl {verb}", timeout=120)  # fmt: skip
    said = "maintenance mode on: no failover" if want else "maintenance mode off"
    return StepResult(host=step.host, changed=True, summary=said)


@activity.defn(name="rolling.restart_patroni")
async def restart_patroni(step: HostStep) -> StepResult:
    """Restart Patroni on ``step.host`` (a new binary takes effect) and wait until its API
    answers with PostgreSQL running. Meant for a paused cluster: PostgreSQL keeps running
    across it. facts: ``postgres_restarted`` (the postmaster's start time changed)."""
    spec = step.spec
    sql = "SELECT pg_catalog.pg_postmaster_start_time()"
    async with heartbeating(), open_host(step.target) as host:
        before = (await host.run(psql(spec.postgres.port, sql), label="psql")).stdout.strip()
        await host.run(["systemctl", "restart", "patroni"], label="systemctl restart patroni",
                       timeout=120)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            found = await patroni_facts.cluster(host, api_url(spec, step.host))
            me = None if isinstance(found, str) else next(
                (m for m in found if m.name == step.host), None)  # fmt: skip
            if me is not None and me.state in ("running", "streaming"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"host {step.host}: Patroni did not report PostgreSQL "
                                   f"running within 60 s of its restart ({found})")  # fmt: skip
            await asyncio.sleep(1)
        after = (await host.run(psql(spec.postgres.port, sql), label="psql")).stdout.strip()
    restarted = before != after
    return StepResult(
        host=step.host, changed=True,
        summary="restarted Patroni" + ("; PostgreSQL restarted too" if restarted
                                       else "; PostgreSQL kept running"),
        facts={"postgres_restarted": restarted},
    )  # fmt: skip
