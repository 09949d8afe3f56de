"""Converge a Patroni member: its config file, directories, watchdog, unit; and the guard
that keeps Patroni away from a data directory that belongs to another system.

Never restarts PostgreSQL: a changed config is applied by reloading Patroni (SIGHUP), which
reloads or flags PostgreSQL itself. Never starts Patroni on a foreign data directory.
"""

from __future__ import annotations

import posixpath

from pydantic import BaseModel, ConfigDict, Field

from pgha.errors import HostError
from pgha.hosts.facts import patroni as facts
from pgha.hosts.facts import systemd as unit_facts
from pgha.hosts.facts.files import file_state
from pgha.hosts.facts.patroni import DataDir, Member, Replication
from pgha.hosts.host import Host, render_command
from pgha.hosts.ops.files import ensure_directory, ensure_file
from pgha.hosts.ops.systemd import daemon_reload, ensure_unit
from pgha.hosts.result import Outcome, combine
from pgha.status_models import REPLICA_ROLES

PATRONI_UNIT = "patroni"
PG_OWNER = "postgres"
SOFTDOG_CONF = "/etc/modules-load.d/pgha-softdog.conf"
WATCHDOG_UDEV_RULE = "/etc/udev/rules.d/61-pgha-watchdog.rules"
#: Patroni opens the device as user postgres; udev applies this on every boot.
UDEV_RULE = 'KERNEL=="watchdog", OWNER="postgres", GROUP="postgres", MODE="0600"\n'


class DataDirInUse(HostError):
    """The data directory belongs to another system. Permanent: never overwritten."""


class WatchdogUnavailable(HostError):
    """The spec requires a watchdog and the host has none. Permanent."""


class ConfigFile(BaseModel):
    """A rendered file to ship. Plain values: the hosts layer knows no renderer."""

    model_config = ConfigDict(frozen=True)

    path: str
    content: str = Field(repr=False)
    mode: int
    owner: str
    group: str


def data_dir_problem(
    host: str,
    address: str,
    d: DataDir,
    *,
    cluster: str,
    version: int,
    expected_sysid: str | None,
) -> str | None:
    """Why Patroni must not be started on ``d``, or None when it may. Pure.

    Absent or empty: Patroni initialises or clones it. A cluster directory is Patroni's
    when Patroni wrote its postgresql.conf for this cluster (``cluster_name`` is the
    scope), its major version is the spec's, and its system identifier is the one the DCS
    records for the cluster (when one is recorded). Anything else would be taken over by
    Patroni (it adopts a lone data directory as the new cluster's) or rewound/re-cloned.
    """
    where = f"host {host} ({address})"
    fix = f"Move the directory aside or run `pgha run reinit --cluster {cluster} --host {host}`."
    if d.kind in ("absent", "empty"):
        return None
    if d.kind == "other":
        shown = ", ".join(d.entries[:5])
        return (
            f"{where}: {d.path} is not empty ({shown}) but holds no PostgreSQL cluster; "
            f"Patroni cannot initialise or clone into it. {fix}"
        )
    if d.pg_version != str(version):
        return (
            f"{where}: {d.path} holds a PostgreSQL {d.pg_version} cluster, cluster "
            f"'{cluster}' runs PostgreSQL {version}. {fix}"
        )
    if not d.patroni_managed or d.cluster_name != cluster:
        owner = f"Patroni cluster '{d.cluster_name}'" if d.patroni_managed else "no Patroni"
        return (
            f"{where}: {d.path} belongs to system id {d.sysid or '?'}, managed by {owner}, "
            f"cluster '{cluster}' never managed it. {fix}"
        )
    if expected_sysid and d.sysid and d.sysid != expected_sysid:
        return (
            f"{where}: {d.path} belongs to system id {d.sysid}, cluster '{cluster}' expects "
            f"{expected_sysid}. {fix}"
        )
    return None


async def check_data_dir(
    host: Host,
    *,
    path: str,
    bin_dir: str,
    cluster: str,
    version: int,
    initialize_key: str,
    etcd_urls: list[str],
) -> DataDir:
    """Refuse a data directory that belongs to another system. Read-only.

    :param initialize_key: where Patroni records the cluster's system identifier in etcd.
    :raises DataDirInUse: permanent; the message says what to do.
    :raises CommandFailed: etcd could not be asked (transient).
    """
    d = await facts.data_dir(host, path, bin_dir)
    expected = None
    if d.kind == "cluster":
        expected = await facts.dcs_value(host, initialize_key, etcd_urls)
    problem = data_dir_problem(
        host.name, host.address, d, cluster=cluster, version=version, expected_sysid=expected
    )
    if problem:
        raise DataDirInUse(host.name, problem)
    return d


async def ensure_directories(
    host: Host, data_dir: str, pgpass: str
) -> tuple[list[Outcome], list[str]]:
    """The parents of the data directory and of the pgpass file, writable by postgres:
    Patroni (re)creates the data directory itself (initdb, clone, reinit), and rewrites
    its pgpass file. Idempotent.

    A parent that exists and belongs to someone else is fixed only in Debian's own layout
    (``/var/lib/postgresql...``); elsewhere it may be a shared system directory, so pgha
    leaves it and returns a warning instead.
    """
    outcomes: list[Outcome] = []
    warnings: list[str] = []
    for parent in dict.fromkeys([posixpath.dirname(data_dir.rstrip("/")),
                                 posixpath.dirname(pgpass)]):  # fmt: skip
        st = await file_state(host, parent, follow=True)
        debian = parent == "/var/lib/postgresql" or parent.startswith("/var/lib/postgresql/")
        if not st.exists or st.owner == PG_OWNER or debian:
            outcomes.append(await ensure_directory(host, parent, mode=0o755, owner=PG_OWNER,
                                                   group=PG_OWNER))  # fmt: skip
        else:
            warnings.append(
                f"{parent} belongs to {st.owner}, not postgres: Patroni cannot re-create "
                f"{data_dir} there (reinit); give postgres a directory of its own"
            )
    return outcomes, warnings


async def ensure_watchdog(host: Host, wanted: str) -> tuple[str, list[Outcome], str | None]:
    """Make a watchdog usable by Patroni where the host can have one. Idempotent.

    Loads softdog when there is no device and modprobe exists, keeps it loaded across
    reboots, and lets postgres open the device. Effective mode: ``required`` when the host
    has a watchdog, ``automatic`` (with a warning) when not, ``off`` when off.

    :param wanted: the spec's mode: off, automatic or required.
    :returns: (effective mode, outcomes, warning or None).
    :raises WatchdogUnavailable: ``required`` and the host has no watchdog.
    """
    if wanted == "off":
        return "off", [], None
    outcomes: list[Outcome] = []
    wd = await facts.watchdog(host)
    why = "no /dev/watchdog and no modprobe (a container?)"
    if wd.device_owner is None and wd.can_modprobe:
        out = await host.run(["modprobe", "softdog"], check=False)
        if out.ok:
            await host.run(["sh", "-c", "command -v udevadm >/dev/null && udevadm settle "
                            "--timeout=5 || sleep 1"], check=False)  # fmt: skip
            wd = await facts.watchdog(host)
            outcomes.append(Outcome.made("loaded softdog", ["modprobe softdog"]))
        why = f"no /dev/watchdog; `modprobe softdog` said: {out.stderr.strip() or 'nothing'}"
    if wd.device_owner is None:
        where = f"host {host.name} ({host.address})"
        if wanted == "required":
            raise WatchdogUnavailable(
                host.name,
                f"{where}: the spec says watchdog: required, but {why}. Give the host a "
                "watchdog (a hardware one, or the softdog kernel module), or set watchdog: "
                "automatic to run without one",
            )
        return (
            "automatic",
            outcomes,
            (
                f"{why}: Patroni runs with watchdog mode automatic, i.e. without a watchdog "
                "(a hung leader is not reset)"
            ),
        )
    if wd.softdog_loaded:
        outcomes.append(await ensure_file(host, SOFTDOG_CONF, "softdog\n"))
    outcomes.append(await ensure_file(host, WATCHDOG_UDEV_RULE, UDEV_RULE))
    if wd.device_owner != PG_OWNER:
        cmd = ["chown", f"{PG_OWNER}:{PG_OWNER}", "/dev/watchdog"]
        await host.run(cmd)
        outcomes.append(Outcome.made("let postgres open /dev/watchdog", [render_command(cmd)]))
    return "required", outcomes, None


async def ensure_config(host: Host, config: ConfigFile) -> Outcome:
    """Ship Patroni's config; when it changed and Patroni runs, reload Patroni (SIGHUP:
    Patroni re-reads the file and reloads PostgreSQL, or flags a pending restart for
    settings that need one). Never restarts anything. Idempotent.
    """
    written = await ensure_file(host, config.path, config.content, mode=config.mode,
                                owner=config.owner, group=config.group)  # fmt: skip
    if not written.changed:
        return written
    state = await unit_facts.unit_state(host, PATRONI_UNIT)
    if not state.active:
        return written
    cmd = ["systemctl", "reload", PATRONI_UNIT]
    await host.run(cmd)
    return Outcome.made(
        f"{written.summary}; reloaded Patroni (PostgreSQL not restarted)",
        [*written.commands, render_command(cmd)],
    )


async def ensure_enabled(host: Host, unit: str = PATRONI_UNIT) -> Outcome:
    """Enable the unit for boot without starting or stopping it. Idempotent."""
    state = await unit_facts.unit_state(host, unit)
    if state.enabled or not state.enableable:
        return Outcome.unchanged(f"{unit} is enabled")
    cmd = ["systemctl", "enable", unit]
    await host.run(cmd)
    return Outcome.made(f"enabled {unit} (not started)", [render_command(cmd)])


async def ensure_postmaster_watch(host: Host, script: ConfigFile, unit: ConfigFile) -> Outcome:
    """Install the watcher that wakes Patroni when the postmaster exits, running and
    enabled; restart it when its script or unit changed. Idempotent.

    It never touches PostgreSQL or Patroni; it only sends Patroni a no-op PATCH /config.
    """
    name = posixpath.basename(unit.path)
    outcomes = [
        await ensure_directory(host, posixpath.dirname(script.path)),
        await ensure_file(host, script.path, script.content, mode=script.mode),
        await ensure_file(host, unit.path, unit.content, mode=unit.mode),
    ]
    changed = outcomes[1].changed or outcomes[2].changed
    outcomes.append(await daemon_reload(host, [name]))
    if changed and (await unit_facts.unit_state(host, name)).active:
        cmd = ["systemctl", "restart", name]
        await host.run(cmd)
        outcomes.append(
            Outcome.made(f"restarted {name} (its files changed)", [render_command(cmd)])
        )
    outcomes.append(await ensure_unit(host, name, running=True, enabled=True))
    return combine(*outcomes)


def leader_of(members: list[Member]) -> Member | None:
    """The member that leads and runs PostgreSQL, if any. Pure."""
    return next((m for m in members if m.role == "leader" and m.state == "running"), None)


def replica_problems(
    members: list[Member],
    expected: list[str],
    streaming: dict[str, Replication],
    max_lag_bytes: int = 0,
) -> list[str]:
    """Why the replicas are not all streaming from the leader, on its timeline, within
    ``max_lag_bytes`` of it; empty when they are. Pure.

    Role and state come from Patroni; streaming and lag from the leader's
    pg_stat_replication, which is live. Patroni 3.0.2 says ``running`` where later
    versions say ``streaming``, and its ``lag`` compares two positions each refreshed only
    once per HA loop (loop_wait), so right after a clone it shows a stale 16 MiB for up to
    ten seconds although the replica is level.

    :param expected: names of the replicas that must stream.
    :param streaming: application_name -> row of the leader's pg_stat_replication.
    """
    leader = leader_of(members)
    if leader is None:
        return ["no running leader"]
    by_name = {m.name: m for m in members}
    problems: list[str] = []
    for name in expected:
        m = by_name.get(name)
        row = streaming.get(name)
        if m is None:
            problems.append(f"{name} is not in the cluster yet")
        elif m.role not in REPLICA_ROLES or m.state not in ("running", "streaming"):
            problems.append(f"{name} is {m.role} and {m.state or 'without state'}")
        elif m.timeline is not None and m.timeline != leader.timeline:
            # Unknown is fine: Patroni 3.0.2 fills a replica's timeline in only some HA
            # loops after it streams; streaming from the leader needs its timeline anyway.
            problems.append(f"{name} is on timeline {m.timeline}, the leader on {leader.timeline}")
        elif row is None or row.state != "streaming":
            problems.append(f"{name} is {row.state if row else 'not connected'} on the leader")
        elif row.replay_lag_bytes is None or row.replay_lag_bytes > max_lag_bytes:
            lag = "unknown" if row.replay_lag_bytes is None else row.replay_lag_bytes
            problems.append(f"{name} replays {lag} bytes behind the leader")
    return problems
