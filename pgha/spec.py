"""The cluster spec: pydantic models, defaults and topology validation. No I/O but reading the file.

A spec describes what the cluster should be; workflows receive it whole (it holds secret
*references*, never secret values) and activities resolve secrets at run time.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, HttpUrl, ValidationError

from pgha.errors import SpecError
from pgha.event_kinds import EventKind, Reaction
from pgha.models import AbsPath, HostTarget, Model, Name, SecretRef

SqlName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]


class Role(StrEnum):
    postgres = "postgres"
    etcd = "etcd"
    haproxy = "haproxy"
    backup_repo = "backup-repo"
    verify_target = "verify-target"


class SshSettings(Model):
    """How to reach hosts over SSH. Cluster-wide defaults, overridable per host."""

    user: str = "root"
    port: int = Field(22, ge=1, le=65535)
    key_file: str = "~/.ssh/id_ed25519"
    known_hosts: str = "~/.ssh/known_hosts"
    #: Run commands through sudo (needed for a non-root user): ``sudo -n`` when the user has
    #: NOPASSWD, else ``sudo -S`` with ``sudo_password``.
    sudo: bool = False
    sudo_password: SecretRef | None = None
    connect_timeout: float = Field(10.0, gt=0)


class SshOverride(Model):
    user: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    key_file: str | None = None
    known_hosts: str | None = None
    sudo: bool | None = None
    sudo_password: SecretRef | None = None


class HostSpec(Model):
    name: Name
    address: ipaddress.IPv4Address
    roles: list[Role] = Field(min_length=1)
    ssh: SshOverride = SshOverride()


class PackageSource(StrEnum):
    debian = "debian"
    pgdg = "pgdg"
    percona = "percona"


class PackageSettings(Model):
    source: PackageSource = PackageSource.debian
    #: Mirror URL to use instead of the one configured on the hosts (air-gapped sites).
    mirror: str | None = None
    #: An apt proxy (e.g. apt-cacher-ng) the hosts download through.
    apt_proxy: str | None = None
    #: Exact package versions, e.g. {"postgresql-15": "15.18-0+deb12u1"}.
    pins: dict[str, str] = {}


class PostgresSettings(Model):
    version: int = Field(15, ge=13, le=17)
    port: int = Field(5432, ge=1, le=65535)
    data_dir: AbsPath | None = None
    parameters: dict[str, str | int | float | bool] = {}
    #: Networks whose clients connect to PostgreSQL directly (pg_hba, scram-sha-256): the
    #: applications of the bare-minimum layout, which has no proxies. Behind the VIP,
    #: PostgreSQL sees the proxies' addresses and this can stay empty.
    client_networks: list[ipaddress.IPv4Network] = []

    @property
    def data_path(self) -> str:
        return self.data_dir or f"/var/lib/postgresql/{self.version}/main"


class PatroniSettings(Model):
    """Patroni's bootstrap DCS settings and REST API."""

    ttl: int = Field(30, ge=5)
    loop_wait: int = Field(10, ge=1)
    retry_timeout: int = Field(10, ge=1)
    maximum_lag_on_failover: int = Field(1048576, ge=0)
    synchronous_mode: bool = False
    synchronous_mode_strict: bool = False
    restapi_port: int = Field(8008, ge=1, le=65535)
    #: Run this Patroni release from PyPI (e.g. "3.0.4") instead of the distribution's
    #: package: the worker downloads the wheel once and copies it to the database hosts
    #: (they need no PyPI access), which run it from a venv beside the package (whose
    #: unit, directories and Python libraries it reuses). None: the package's Patroni.
    pypi_version: Annotated[str, Field(pattern=r"^[34]\.\d+\.\d+$")] | None = None


class EtcdSettings(Model):
    client_port: int = Field(2379, ge=1, le=65535)
    peer_port: int = Field(2380, ge=1, le=65535)


class HaproxySettings(Model):
    rw_port: int = Field(5000, ge=1, le=65535)
    ro_port: int = Field(5001, ge=1, le=65535)
    stats_port: int = Field(7000, ge=1, le=65535)
    #: Keep under the host's open-file limit / 2 (lab containers cap it at 20000).
    maxconn: int = Field(4000, ge=1)


class VipSettings(Model):
    #: The virtual IP with its prefix, e.g. 10.0.0.100/24; it must lie in the proxies' subnet.
    address: ipaddress.IPv4Interface
    interface: str = "eth0"
    virtual_router_id: int = Field(51, ge=1, le=255)


class PgbouncerSettings(Model):
    enabled: bool = False
    port: int = Field(6432, ge=1, le=65535)
    pool_mode: Literal["session", "transaction", "statement"] = "transaction"
    default_pool_size: int = Field(20, ge=1)
    max_client_conn: int = Field(1000, ge=1)


class WatchdogMode(StrEnum):
    off = "off"
    automatic = "automatic"
    required = "required"


CRON_FIELD = r"[0-9*/,\-]+|[A-Za-z]{3}(?:-[A-Za-z]{3})?"
CRON = re.compile(rf"^(?:{CRON_FIELD})(?:\s+(?:{CRON_FIELD})){{4}}$")
Cron = Annotated[str, Field(pattern=CRON.pattern)]


class BackupSchedule(Model):
    """Cron expressions (minute hour day-of-month month day-of-week, UTC); null = no schedule."""

    full: Cron | None = "0 1 * * 0"
    diff: Cron | None = "0 1 * * 1-6"
    incr: Cron | None = None
    verify_restore: Cron | None = "0 4 * * *"


class BackupRetention(Model):
    full: int = Field(2, ge=1)
    diff: int | None = Field(7, ge=1)


class RestoreVerifySettings(Model):
    """Where and how restore verification runs (see docs/backups.md)."""

    #: The host to restore on; default: the one host with role verify-target.
    host: Name | None = None
    #: Scratch space on that host; the restore goes to <scratch_path>/<cluster>/data and is
    #: removed afterwards. Needs room for the whole database.
    scratch_path: AbsPath = "/var/lib/pgha-verify"
    #: The restored server's port: it listens on a Unix socket in the scratch directory only.
    port: int = Field(5499, ge=1, le=65535)
    #: `pgha backups` flags a last verification older than this.
    max_age_hours: float = Field(36.0, gt=0)
    #: Bound on how long writers to user tables may wait while the sentinel pins a
    #: consistent row count (milliseconds of lock wait; then it retries, then fails).
    lock_timeout_ms: int = Field(2000, ge=100)
    #: Bound on restore + recovery + checks.
    timeout_hours: float = Field(6.0, gt=0)


class RepoHostType(StrEnum):
    """How the PostgreSQL hosts reach the repository for archive-push and archive-get."""

    #: pgBackRest's TLS server on the repository host (pgbackrest.service), client
    #: certificates from a CA pgha makes there: about 15 ms a call.
    tls = "tls"
    #: SSH as the repository user (one shared connection per host): about 0.13 s a call.
    ssh = "ssh"


class BackupSettings(Model):
    enabled: bool = True
    stanza: Name | None = None
    repo_path: AbsPath = "/var/lib/pgbackrest"
    #: The repository host always reaches the PostgreSQL hosts over SSH (backups).
    repo_host_type: RepoHostType = RepoHostType.tls
    tls_port: int = Field(8432, ge=1, le=65535)
    #: Take backups from a standby instead of the primary.
    from_standby: bool = False
    schedule: BackupSchedule = BackupSchedule()
    retention: BackupRetention = BackupRetention()
    verify: RestoreVerifySettings = RestoreVerifySettings()


class PowerControl(StrEnum):
    #: No out-of-band power control: host-loss drills are refused.
    none = "none"
    #: pgha's own lab (docker kill / docker start of the host's container).
    lab = "lab"
    #: ``drill.power_off`` / ``drill.power_on`` run on the worker (IPMI, a cloud CLI...).
    command = "command"


class DrillSettings(Model):
    """Failover drills (see docs/drills.md)."""

    power: PowerControl = PowerControl.none
    #: Shell commands run on the worker; ``{host}`` and ``{address}`` are filled in.
    power_off: str | None = None
    power_on: str | None = None
    #: A drill waits, before its fault, for `pgha approve` (the lab's spec turns it off).
    require_approval: bool = True
    #: How long it waits for the decision before giving up (nothing is done then).
    approval_timeout_s: float = Field(3600.0, gt=0)
    #: Healing may reinitialise (`patronictl reinit`) a member that did not rejoin by
    #: itself within heal_timeout_s, from the leader every member agrees on: its data
    #: diverged, and writes only it held are gone (the drill's verdict counts them lost).
    reinit_diverged: bool = True
    #: How long healing waits for every member to stream with no lag, before (and after)
    #: reinitialising.
    heal_timeout_s: float = Field(240.0, gt=0)


def _default_reactions() -> dict[EventKind, list[Reaction]]:
    alert = [Reaction.alert]
    return {
        EventKind.leader_changed: [Reaction.post_failover, Reaction.alert],
        EventKind.timeline_changed: [Reaction.log],
        EventKind.member_down: alert,
        EventKind.member_back: [Reaction.log],
        EventKind.replica_lag_high: alert,
        EventKind.etcd_quorum_at_risk: alert,
        EventKind.vip_moved: alert,
        EventKind.archiving_failing: alert,
        EventKind.archiving_recovered: [Reaction.log],
        EventKind.backup_stale: alert,
        EventKind.verification_failed: alert,
        EventKind.verification_stale: alert,
    }


class GuardianSettings(Model):
    """The guardian: a long-running workflow that watches the cluster and reacts to its
    events (see docs/guardian.md)."""

    #: Started by provision (and kept running); `pgha guard start|stop` either way.
    enabled: bool = False
    #: Seconds between two looks at the cluster (each look is a few SSH reads).
    interval_s: float = Field(30.0, gt=0, le=3600)
    #: A replica further behind than this is an event.
    max_lag_bytes: int = Field(16 * 1024 * 1024, ge=0)
    #: The newest backup older than this is an event (a day and a bit: daily backups).
    backup_max_age_h: float = Field(26.0, gt=0)
    #: The newest restore verification older than this is an event.
    verification_max_age_h: float = Field(26.0, gt=0)
    #: Where alerts go: a JSON POST per event. None: alerts are logged only.
    webhook: HttpUrl | None = None
    #: After a failover, reinitialise (`patronictl reinit`) an old primary that did not
    #: rejoin by itself: its writes that no replica had are gone.
    reinit_old_primary: bool = False
    #: Event kind -> what to do. Kinds left out are logged.
    reactions: dict[EventKind, list[Reaction]] = Field(default_factory=_default_reactions)


class PreflightSettings(Model):
    min_memory_mb: int = Field(1024, ge=0)
    #: GiB free on the filesystem of each data path (data directory, backup repository).
    min_disk_free_gb: float = Field(2.0, ge=0)
    min_cpus: int = Field(1, ge=1)


class DatabaseSpec(Model):
    name: SqlName
    owner: SqlName
    extensions: list[SqlName] = []


class RoleSpec(Model):
    name: SqlName
    login: bool = True
    password: SecretRef | None = None
    #: Roles this role is a member of.
    member_of: list[SqlName] = []


class ClusterSecrets(Model):
    """The cluster's own credentials; by default generated into pgha's secret store."""

    superuser: SecretRef | None = None
    replication: SecretRef | None = None
    rewind: SecretRef | None = None
    patroni_restapi: SecretRef | None = None


class ClusterSpec(Model):
    cluster: Name
    ssh: SshSettings = SshSettings()
    hosts: list[HostSpec] = Field(min_length=1)
    packages: PackageSettings = PackageSettings()
    postgres: PostgresSettings = PostgresSettings()
    patroni: PatroniSettings = PatroniSettings()
    etcd: EtcdSettings = EtcdSettings()
    haproxy: HaproxySettings = HaproxySettings()
    vip: VipSettings | None = None
    pgbouncer: PgbouncerSettings = PgbouncerSettings()
    watchdog: WatchdogMode = WatchdogMode.automatic
    backup: BackupSettings = BackupSettings()
    drill: DrillSettings = DrillSettings()
    guardian: GuardianSettings = GuardianSettings()
    preflight: PreflightSettings = PreflightSettings()
    databases: list[DatabaseSpec] = []
    roles: list[RoleSpec] = []
    secrets: ClusterSecrets = ClusterSecrets()

    def hosts_with(self, role: Role) -> list[HostSpec]:
        return [h for h in self.hosts if role in h.roles]

    def host(self, name: str) -> HostSpec:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def target(self, name: str) -> HostTarget:
        """How to reach host ``name``: its SSH overrides on top of the cluster's defaults."""
        h = self.host(name)
        o, d = h.ssh, self.ssh
        return HostTarget(
            name=h.name,
            address=str(h.address),
            port=o.port or d.port,
            user=o.user or d.user,
            key_file=o.key_file or d.key_file,
            known_hosts=o.known_hosts or d.known_hosts,
            sudo=d.sudo if o.sudo is None else o.sudo,
            sudo_password=o.sudo_password or d.sudo_password,
            connect_timeout=d.connect_timeout,
        )

    @property
    def stanza(self) -> str:
        return self.backup.stanza or self.cluster

    def verify_host(self) -> HostSpec | None:
        """The host restore verification restores on: ``backup.verify.host``, else the one
        host with role verify-target (None when there is none)."""
        if self.backup.verify.host is not None:
            return self.host(self.backup.verify.host)
        targets = self.hosts_with(Role.verify_target)
        return targets[0] if len(targets) == 1 else None


def _inside(path: str, other: str) -> bool:
    """True when one path is the other or lies under it."""
    a, b = path.rstrip("/") + "/", other.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def _verify_problems(spec: ClusterSpec) -> list[str]:
    """Restore verification needs one verify-target host (the repository host or one of its
    own) and scratch space apart from the repository and the data directory."""
    verify = spec.backup.verify
    # A postgres host with the role is reported on its own (restores stay off members).
    targets = [h for h in spec.hosts_with(Role.verify_target) if Role.postgres not in h.roles]
    names = [h.name for h in spec.hosts]
    if verify.host is not None:
        if verify.host not in names:
            return [f"backup.verify.host: no host named {verify.host!r} in hosts"]
        if Role.verify_target not in spec.host(verify.host).roles:
            return [f"backup.verify.host: {verify.host} lacks the role verify-target; add it"]
    elif len(targets) > 1:
        return [
            f"backup.verify.host: {len(targets)} hosts have role verify-target "
            f"({', '.join(h.name for h in targets)}); name the one to restore on"
        ]
    if not targets and verify.host is None:
        return []
    problems = []
    for field, path in (
        ("backup.repo_path", spec.backup.repo_path),
        ("postgres.data_path", spec.postgres.data_path),
    ):
        if _inside(verify.scratch_path, path):
            problems.append(
                f"backup.verify.scratch_path: {verify.scratch_path} overlaps {field} ({path}); "
                "restores are removed afterwards, so give them a directory of their own"
            )
    return problems


def topology_problems(spec: ClusterSpec) -> list[str]:
    """Cross-field checks pydantic cannot express per field. Each problem names its field path.

    :returns: human-readable problems, empty when the topology is sound.
    """
    problems: list[str] = []
    for field, values in (
        ("name", [h.name for h in spec.hosts]),
        ("address", [str(h.address) for h in spec.hosts]),
    ):
        for value, count in Counter(values).items():
            if count > 1:
                where = [f"hosts[{i}]" for i, v in enumerate(values) if v == value]
                problems.append(
                    f"{', '.join(where)}.{field}: {value!r} is used by {count} hosts; "
                    f"each host needs its own {field}"
                )
    for i, h in enumerate(spec.hosts):
        dup = [r.value for r, n in Counter(h.roles).items() if n > 1]
        if dup:
            problems.append(f"hosts[{i}].roles: {', '.join(dup)} listed twice")

    def names(role: Role) -> str:
        return ", ".join(h.name for h in spec.hosts_with(role)) or "none"

    pg = spec.hosts_with(Role.postgres)
    if len(pg) < 2:
        problems.append(
            f"hosts: {len(pg)} host(s) have role postgres ({names(Role.postgres)}); "
            "high availability needs at least 2"
        )
    etcd = spec.hosts_with(Role.etcd)
    if len(etcd) < 3 or len(etcd) % 2 == 0:
        problems.append(
            f"hosts: {len(etcd)} host(s) have role etcd ({names(Role.etcd)}); etcd needs an "
            "odd number of members, at least 3, to keep a majority when one is lost"
        )
    proxies = spec.hosts_with(Role.haproxy)
    if proxies and len(proxies) < 2:
        problems.append(
            f"hosts: only {proxies[0].name} has role haproxy; the load-balancing layer needs "
            "at least 2 HAProxy hosts behind the VIP (or none, for the bare-minimum layout)"
        )
    if proxies and spec.vip is None:
        problems.append("vip: required when hosts have role haproxy (keepalived moves it)")
    if spec.vip is not None:
        if not proxies:
            problems.append("vip: set, but no host has role haproxy to hold it")
        problems.extend(_vip_problems(spec, spec.vip, proxies))
    if spec.pgbouncer.enabled and not proxies:
        problems.append(
            "pgbouncer.enabled: pgbouncer runs on the HAProxy hosts in front of the read-write "
            "port; the bare-minimum layout has none, so set it to false"
        )
    repos = spec.hosts_with(Role.backup_repo)
    if spec.backup.enabled:
        if len(repos) != 1:
            problems.append(
                f"hosts: backup.enabled needs exactly 1 host with role backup-repo, found "
                f"{len(repos)} ({names(Role.backup_repo)}); or set backup.enabled: false"
            )
        for r in repos:
            if Role.postgres in r.roles:
                problems.append(
                    f"hosts[{spec.hosts.index(r)}].roles: {r.name} is both backup-repo and "
                    "postgres; a repository on a database node is lost with that node"
                )
    for i, h in enumerate(spec.hosts):
        if Role.verify_target in h.roles and Role.postgres in h.roles:
            problems.append(
                f"hosts[{i}].roles: {h.name} is both verify-target and postgres; restores "
                "are verified away from cluster members"
            )
    if spec.backup.schedule.verify_restore and not spec.hosts_with(Role.verify_target):
        problems.append(
            "backup.schedule.verify_restore: set, but no host has role verify-target; add the "
            "role to a non-postgres host (the backup repo host will do) or set it to null"
        )
    if spec.backup.enabled:
        problems.extend(_verify_problems(spec))
    if spec.drill.power is PowerControl.command and not (
        spec.drill.power_off and spec.drill.power_on
    ):
        problems.append(
            "drill.power: command needs both drill.power_off and drill.power_on (shell "
            "commands with {host} and {address}), or set it to none"
        )
    problems.extend(_port_problems(spec))
    if spec.patroni.loop_wait + 2 * spec.patroni.retry_timeout > spec.patroni.ttl:
        problems.append(
            f"patroni: loop_wait + 2*retry_timeout ({spec.patroni.loop_wait} + "
            f"2*{spec.patroni.retry_timeout}) must not exceed ttl ({spec.patroni.ttl}), "
            "or a leader can lose its lock while still working"
        )
    if spec.patroni.synchronous_mode_strict and not spec.patroni.synchronous_mode:
        problems.append("patroni.synchronous_mode_strict: needs synchronous_mode: true")
    role_names = {r.name for r in spec.roles}
    for i, db in enumerate(spec.databases):
        if db.owner not in role_names and db.owner != "postgres":
            problems.append(
                f"databases[{i}].owner: role {db.owner!r} is not in roles; add it to roles"
            )
    return problems


def _vip_problems(spec: ClusterSpec, vip: VipSettings, proxies: list[HostSpec]) -> list[str]:
    problems = []
    net = vip.address.network
    ip = vip.address.ip
    if ip in (net.network_address, net.broadcast_address):
        problems.append(f"vip.address: {ip} is the network or broadcast address of {net}")
    for i, h in enumerate(spec.hosts):
        if h.address == ip:
            problems.append(f"vip.address: {ip} is the address of host {h.name} (hosts[{i}])")
    for h in proxies:
        if h.address not in net:
            problems.append(
                f"vip.address: {vip.address} is not in the subnet of haproxy host {h.name} "
                f"({h.address}); the VIP must be on the proxies' network"
            )
    return problems


def _port_problems(spec: ClusterSpec) -> list[str]:
    """Ports of services that share a host must differ."""
    problems = []
    ports = {
        "postgres.port": spec.postgres.port,
        "patroni.restapi_port": spec.patroni.restapi_port,
        "etcd.client_port": spec.etcd.client_port,
        "etcd.peer_port": spec.etcd.peer_port,
        "haproxy.rw_port": spec.haproxy.rw_port,
        "haproxy.ro_port": spec.haproxy.ro_port,
        "haproxy.stats_port": spec.haproxy.stats_port,
    }
    if spec.pgbouncer.enabled:
        ports["pgbouncer.port"] = spec.pgbouncer.port
    seen: dict[int, str] = {}
    for field, port in ports.items():
        if port in seen:
            problems.append(f"{field}: port {port} is already used by {seen[port]}")
        else:
            seen[port] = field
    return problems


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _pydantic_problems(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key; check its spelling and level (see deploy/clusters/example.yaml)"
        elif e["type"] == "missing":
            msg = "required but missing"
        elif e["type"] == "string_pattern_mismatch" and loc and loc[-1] in ("name", "cluster"):
            msg = f"{e['input']!r} is not a valid name: use lower-case letters, digits and '-'"
        elif e["type"] == "string_pattern_mismatch" and loc[-2:] == ("patroni", "pypi_version"):
            msg = (
                f"{e['input']!r} is not a Patroni 3.x or 4.x release: write it as on PyPI, "
                "e.g. 3.0.4"
            )
        problems.append(f"{_loc(loc)}: {msg}")
    return problems


def parse_spec(data: Any, path: str) -> ClusterSpec:
    """Validate already-parsed YAML data into a ClusterSpec.

    :raises SpecError: listing every problem with its field path.
    """
    if not isinstance(data, dict):
        raise SpecError(path, ["(top level): expected a mapping of settings"])
    try:
        spec = ClusterSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(path, _pydantic_problems(err)) from None
    problems = topology_problems(spec)
    if problems:
        raise SpecError(path, problems)
    return spec


def resolve_spec_path(cluster: str, clusters_dir: Path | None = None) -> Path:
    """``prod`` -> ``clusters/prod.yaml``; a value with a '/' or ending in .yaml is a path."""
    if "/" in cluster or cluster.endswith((".yaml", ".yml")):
        return Path(cluster)
    return (clusters_dir or Path("clusters")) / f"{cluster}.yaml"


def load_spec(cluster: str, clusters_dir: Path | None = None) -> ClusterSpec:
    """Read and validate a cluster spec by name or path.

    :raises SpecError: when the file is missing, not YAML, or not a valid spec.
    """
    path = resolve_spec_path(cluster, clusters_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        hint = " (run `pgha lab up` to create the lab's)" if path.stem == "lab" else ""
        raise SpecError(str(path), [f"no such file{hint}"]) from None
    except OSError as err:
        raise SpecError(str(path), [f"cannot read: {err.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(top level)"
        raise SpecError(str(path), [f"{where}: not valid YAML: {err}"]) from None
    return parse_spec(data, str(path))


def spec_to_yaml(spec: ClusterSpec) -> str:
    """The validated spec with every default filled in, as YAML."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
