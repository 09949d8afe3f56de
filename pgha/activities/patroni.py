"""Patroni activities: config, start a member, wait for a leader, wait for streaming replicas.

Thin wrappers over pgha.hosts.ops.patroni. Secrets are resolved here (render_secrets), go
only into the 0600 config file, and never into a StepResult.
"""

from __future__ import annotations

import asyncio
import time

from temporalio import activity

from pgha.activities.cluster_secrets import render_secrets
from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import permanent, rendering, step_result, translated
from pgha.checks.patroni_risks import stalled_leader_risk
from pgha.errors import CommandFailed, HostError
from pgha.hosts.facts import patroni as facts
from pgha.hosts.facts.files import file_state
from pgha.hosts.facts.packages import installed_packages
from pgha.hosts.facts.postgres_errors import errors_suffix, startup_errors
from pgha.hosts.facts.systemd import unit_state
from pgha.hosts.host import Host
from pgha.hosts.ops import patroni as ops
from pgha.hosts.ops import patroni_release as release_ops
from pgha.hosts.ops.patroni import PATRONI_UNIT, ConfigFile, DataDirInUse, WatchdogUnavailable
from pgha.hosts.ops.systemd import ensure_unit
from pgha.hosts.result import Outcome
from pgha.patroni_wheel import WheelUnavailable, patroni_wheel
from pgha.render import RenderedFile, etcd_client_urls, patroni_config, postmaster_watch_files
from pgha.render.patroni import (
    PATRONI_CONFIG_PATH,
    PATRONI_NAMESPACE,
    bin_dir,
    pgpass_path,
)
from pgha.spec import ClusterSpec, Role, WatchdogMode
from pgha.steps import HostStep, StepResult

SECRETS = ("superuser", "replication", "rewind", "patroni_restapi")
#: A wait activity gives up (transiently, so Temporal retries it) after this long: below
#: CLUSTER_WAIT's start-to-close timeout, so a retry, not a timeout, reports the reason.
WAIT_S = 90.0
POLL_S = 1.0


def api_url(spec: ClusterSpec, host: str) -> str:
    return f"http://{spec.host(host).address}:{spec.patroni.restapi_port}"


def initialize_key(spec: ClusterSpec) -> str:
    """Where Patroni records the cluster's system identifier: <namespace><scope>/initialize."""
    return f"{PATRONI_NAMESPACE}{spec.cluster}/initialize"


def render(
    spec: ClusterSpec, host: str, watchdog: WatchdogMode, *, drained: bool = False
) -> RenderedFile:
    """Patroni's config with the effective watchdog mode (what the host can do), the
    member tagged out of service when ``drained`` (a rolling operation works on it).

    :raises ApplicationError: non-retryable, for a spec or secret store that cannot render.
    """
    with rendering():
        secrets = render_secrets(spec, *SECRETS)
        return patroni_config(spec.model_copy(update={"watchdog": watchdog}), host, secrets,
                              drained=drained)  # fmt: skip


def as_config_file(f: RenderedFile) -> ConfigFile:
    return ConfigFile(path=f.path, content=f.content, mode=f.mode, owner=f.owner, group=f.group)


async def check_data_dir(host: Host, spec: ClusterSpec) -> facts.DataDir:
    return await ops.check_data_dir(
        host,
        path=spec.postgres.data_path,
        bin_dir=bin_dir(spec),
        cluster=spec.cluster,
        version=spec.postgres.version,
        initialize_key=initialize_key(spec),
        etcd_urls=etcd_client_urls(spec),
    )


@activity.defn(name="patroni.ensure_config")
async def ensure_config(step: HostStep) -> StepResult:
    """Patroni's config (0600 postgres), directories, watchdog, unit enabled but not started;
    and the postmaster watcher running (it wakes Patroni when PostgreSQL exits; see
    pgha/hosts/remote/postmaster_watch.py). A changed config on a running member reloads
    Patroni; PostgreSQL is never restarted. Idempotent.

    facts: ``watchdog`` (the effective mode), ``data_dir`` (absent/empty/cluster).
    :raises ApplicationError: DataDirInUse or WatchdogUnavailable (non-retryable).
    """
    spec = step.spec
    render(spec, step.host, spec.watchdog)  # a spec that cannot render fails before I/O
    async with (
        heartbeating(),
        open_host(step.target) as host,
        translated(DataDirInUse, WatchdogUnavailable, render_errors=False),
    ):
        data = await check_data_dir(host, spec)
        release, behind = await converge_release(host, step)
        mode, outcomes, warning = await ops.ensure_watchdog(host, spec.watchdog.value)
        outcomes.insert(0, release)
        version = await facts.patroni_version(host)
        risk = stalled_leader_risk(version, mode) if version else None
        dirs, warnings = await ops.ensure_directories(
            host, spec.postgres.data_path, pgpass_path(spec)
        )
        config = as_config_file(render(spec, step.host, WatchdogMode(mode)))
        outcomes += [*dirs, await ops.ensure_config(host, config), await ops.ensure_enabled(host)]
        watch = [as_config_file(f) for f in postmaster_watch_files(spec)]
        outcomes.append(await ops.ensure_postmaster_watch(host, *watch))
    return step_result(
        step.host,
        outcomes,
        warnings=[w for w in [behind, warning, risk, *warnings] if w],
        facts={"watchdog": mode, "data_dir": data.kind},
    )


async def converge_release(host: Host, step: HostStep) -> tuple[Outcome, str | None]:
    """The Patroni the spec names installed (a PyPI release, or the package's), and a
    warning when the running Patroni is another one: it changes at its next restart, which
    `pgha run upgrade --patroni` does without stopping PostgreSQL.

    :raises ApplicationError: non-retryable, when the worker cannot get the release's wheel.
    """
    spec = step.spec
    version = spec.patroni.pypi_version
    if version:
        try:
            wheel = (await patroni_wheel(version)).read_bytes()
        except WheelUnavailable as err:
            raise permanent(f"patroni.pypi_version: {err}", "WheelUnavailable") from None
        outcome = await release_ops.ensure_release(host, version, wheel,
                                                   env_proxy=spec.packages.apt_proxy)  # fmt: skip
    else:
        outcome = await release_ops.ensure_package_patroni(host)
    running = await release_ops.running_patroni(host)
    if running is None or running == release_ops.expected_script(version):
        return outcome, None
    target = version or (await installed_packages(host, ["patroni"])).get("patroni") or "?"
    return outcome, (
        f"host {step.target.label}: Patroni runs from {running}, not the "
        f"{'release' if version else 'package'} installed now; it changes at Patroni's next "
        f"restart: `pgha run upgrade --cluster {spec.cluster} --patroni {target}` restarts "
        "each member's Patroni in maintenance mode (PostgreSQL keeps running)"
    )


@activity.defn(name="patroni.ensure_release")
async def ensure_release(step: HostStep) -> StepResult:
    """The Patroni the spec names installed on ``step.host`` (see :func:`converge_release`);
    nothing restarted. Idempotent."""
    async with heartbeating(), open_host(step.target) as host:
        outcome, behind = await converge_release(host, step)
    return step_result(step.host, [outcome], warnings=[behind] if behind else [])


@activity.defn(name="patroni.running_version")
async def running_version(step: HostStep) -> StepResult:
    """The version the running Patroni on ``step.host`` reports of itself (its REST API's
    /patroni), "" when it does not answer. Read-only. facts: {"patroni": version}."""
    async with heartbeating(), open_host(step.target) as host:
        doc = await facts.api_document(host, f"{api_url(step.spec, step.host)}/patroni")
    about = (doc or {}).get("patroni")
    version = str(about.get("version", "")) if isinstance(about, dict) else ""
    return StepResult(host=step.host, changed=False, summary=f"Patroni {version or '?'} runs",
                      facts={"patroni": version})  # fmt: skip


@activity.defn(name="patroni.start_member")
async def start_member(step: HostStep) -> StepResult:
    """Patroni running and enabled. Before a start, the data directory is checked again (it
    may have changed since ensure_config). Never restarts a running Patroni. Idempotent.

    :raises ApplicationError: DataDirInUse, PatroniNotConfigured (non-retryable).
    """
    spec = step.spec
    async with (
        heartbeating(),
        open_host(step.target) as host,
        translated(DataDirInUse, render_errors=False),
    ):
        if not (await unit_state(host, PATRONI_UNIT)).active:
            if not (await file_state(host, PATRONI_CONFIG_PATH)).exists:
                # patroni.service has ConditionPathExists on it: a start would "succeed"
                # without running anything.
                raise permanent(
                    f"host {step.target.label}: {PATRONI_CONFIG_PATH} does not exist; run "
                    "patroni.ensure_config before patroni.start_member",
                    "PatroniNotConfigured",
                )
            await check_data_dir(host, spec)
        outcome = await ensure_unit(host, PATRONI_UNIT, running=True, enabled=True)
    return step_result(step.host, [outcome])


def _member_facts(
    members: list[facts.Member], streaming: dict[str, facts.Replication] | None = None
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for m in members:
        row = (streaming or {}).get(m.name)
        out.append({"name": m.name, "role": m.role, "state": m.state, "lag": m.lag,
                    "timeline": m.timeline,
                    "replay_lag_bytes": row.replay_lag_bytes if row else None})  # fmt: skip
    return out


@activity.defn(name="patroni.wait_leader")
async def wait_leader(step: HostStep) -> StepResult:
    """Wait until Patroni (asked through ``step.host``'s REST API) reports a leader whose
    PostgreSQL runs. Read-only; heartbeats; gives up after :data:`WAIT_S` with a transient
    error, so Temporal retries within the workflow's bound.

    facts: ``leader`` (name), ``timeline`` (int).
    """
    url = api_url(step.spec, step.host)
    deadline = time.monotonic() + WAIT_S
    async with heartbeating(), open_host(step.target) as host:
        while True:
            found = await facts.cluster(host, url)
            leader = None if isinstance(found, str) else ops.leader_of(found)
            if leader is not None:
                break
            if time.monotonic() > deadline:
                seen = found if isinstance(found, str) else _member_facts(found)
                raise RuntimeError(
                    f"host {step.target.label}: Patroni at {url} reports no running leader "
                    f"after {WAIT_S:g} s (last seen: {seen}); see `journalctl -u patroni` "
                    "and the PostgreSQL log in /var/log/postgresql"
                )
            await asyncio.sleep(POLL_S)
    return step_result(
        step.host,
        [Outcome.unchanged(f"{leader.name} leads on timeline {leader.timeline}")],
        facts={"leader": leader.name, "timeline": leader.timeline},
    )


async def _streaming(spec: ClusterSpec, leader: str) -> dict[str, facts.Replication]:
    """application_name -> row of the leader's pg_stat_replication ({} while it cannot
    answer, e.g. during a switchover)."""
    try:
        async with open_host(spec.target(leader)) as host:
            rows = await facts.replication(host, spec.postgres.port)
    except CommandFailed:
        return {}
    return {r.application_name: r for r in rows}


async def _startup_errors(
    spec: ClusterSpec, members: list[facts.Member], replicas: list[str]
) -> str:
    """The log lines of each expected replica whose PostgreSQL is not running, so the
    message says why (`` db2: FATAL: ...``); "" when there are none."""
    state = {m.name: m.state for m in members}
    said: list[str] = []
    for name in replicas:
        if state.get(name) in ("running", "streaming"):
            continue
        try:
            async with open_host(spec.target(name)) as host:
                errors = await startup_errors(host, spec.postgres.version, spec.cluster)
        except HostError:  # unreachable: the message already says it is not running
            continue
        if errors:
            said.append(f"{name}{errors_suffix(errors)}")
    return f"; {'; '.join(said)}" if said else ""


@activity.defn(name="patroni.wait_replicas")
async def wait_replicas(step: HostStep) -> StepResult:
    """Wait until every PostgreSQL host other than the leader is a replica on the leader's
    timeline, streaming with replay lag 0 (or ``params["max_lag_bytes"]``: under write load
    lag 0 is only a moment) as the leader's pg_stat_replication shows. Read-only;
    heartbeats; transient error after :data:`WAIT_S`.

    facts: ``leader``, ``members`` ([{name, role, state, lag, timeline}]; ``lag`` is
    Patroni's, ``replay_lag_bytes`` the leader's live view).
    """
    spec = step.spec
    try:
        max_lag = int(step.params.get("max_lag_bytes", "0"))
    except ValueError:
        raise permanent(
            f"params['max_lag_bytes'] is not a number: {step.params}", "InvalidStepInput"
        ) from None
    url = api_url(spec, step.host)
    deadline = time.monotonic() + WAIT_S
    async with heartbeating(), open_host(step.target) as host:
        while True:
            found = await facts.cluster(host, url)
            members = [] if isinstance(found, str) else found
            leader = ops.leader_of(members)
            streaming = await _streaming(spec, leader.name) if leader else {}
            replicas = [h.name for h in spec.hosts_with(Role.postgres) if not leader or
                        h.name != leader.name]  # fmt: skip
            problems = ops.replica_problems(members, replicas, streaming, max_lag)
            if isinstance(found, str):
                problems = [f"Patroni API: {found}"]
            if leader is not None and not problems:
                break
            if time.monotonic() > deadline:
                why = await _startup_errors(spec, members, replicas)
                raise RuntimeError(
                    f"host {step.target.label}: replicas not streaming after {WAIT_S:g} s: "
                    f"{'; '.join(problems)}{why}; see `patronictl -c {PATRONI_CONFIG_PATH} "
                    "list` and `journalctl -u patroni` on the replicas"
                )
            await asyncio.sleep(POLL_S)
    return step_result(
        step.host,
        [Outcome.unchanged(f"{len(replicas)} replicas streaming from {leader.name}, "
                           f"replay lag {'0' if not max_lag else f'<= {max_lag} bytes'}")],
        facts={"leader": leader.name, "members": _member_facts(members, streaming)},
    )  # fmt: skip
