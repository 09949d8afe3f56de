"""Preflight judgements: from one host's facts to findings (ok, warning, blocking). Pure."""

from __future__ import annotations

from enum import StrEnum

from pgha.models import HostTarget, Model
from pgha.spec import ClusterSpec, PackageSource, PreflightSettings, Role


class Severity(StrEnum):
    ok = "ok"
    warning = "warning"
    blocking = "blocking"


class Finding(Model):
    check: str
    severity: Severity
    message: str


class PortClaim(Model):
    """A port a role needs; free, or held by one of ``owners`` (pgha's own service, on re-runs)."""

    port: int
    service: str
    owners: list[str]
    #: The systemd unit that runs the service: in containers `ss` cannot name another
    #: user's process, so an unnamed holder is pgha's own when this unit is active.
    unit: str = ""


class HostCheckInput(Model):
    cluster: str
    target: HostTarget
    roles: list[Role]
    #: Paths whose filesystem must have room: the data directory, the backup repository.
    disk_paths: list[str]
    ports: list[PortClaim]
    package_source: PackageSource
    #: A mirror URL from the spec; None means "whatever the host's apt sources say".
    mirror: str | None
    #: The spec's apt proxy: the reachability check goes through it, as apt will.
    apt_proxy: str | None = None
    postgres_version: int
    thresholds: PreflightSettings


class HostFacts(Model):
    """What preflight saw on one host."""

    os_id: str
    os_version: str
    os_codename: str
    os_pretty: str
    cpus: int
    memory_mb: int
    disks: dict[str, float]  # path the role needs -> free GiB on its filesystem
    pid1: str
    systemd_state: str | None
    time_synchronized: bool | None
    time_detail: str
    busy_ports: dict[int, str]  # port -> process holding it ("?" when ss cannot tell)
    #: Which of the claimed ports' units are active (to recognise unnamed holders).
    active_units: list[str] = []
    source_urls: list[str]
    source_errors: dict[str, str]  # url -> why it was unreachable


class HostReport(Model):
    host: str
    address: str
    roles: list[Role]
    facts: HostFacts | None = None
    findings: list[Finding]

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.blocking]


class PreflightInput(Model):
    spec: ClusterSpec


class PreflightResult(Model):
    cluster: str
    hosts: list[HostReport]

    @property
    def blocking(self) -> list[str]:
        return [f"{h.host}: {f.check}: {f.message}" for h in self.hosts for f in h.blocking]


def port_claims(spec: ClusterSpec, roles: list[Role]) -> list[PortClaim]:
    """The listening ports the host's roles will need, and who may already hold them."""
    claims: list[PortClaim] = []
    if Role.postgres in roles:
        claims.append(
            PortClaim(
                port=spec.postgres.port, service="postgres", owners=["postgres"], unit="patroni"
            )
        )
        claims.append(
            PortClaim(
                port=spec.patroni.restapi_port,
                service="patroni",
                owners=["patroni", "python3"],
                unit="patroni",
            )
        )
        if spec.pgbouncer.enabled:
            claims.append(
                PortClaim(
                    port=spec.pgbouncer.port,
                    service="pgbouncer",
                    owners=["pgbouncer"],
                    unit="pgbouncer",
                )
            )
    if Role.etcd in roles:
        for port in (spec.etcd.client_port, spec.etcd.peer_port):
            claims.append(PortClaim(port=port, service="etcd", owners=["etcd"], unit="etcd"))
    if Role.haproxy in roles:
        h = spec.haproxy
        for port in (h.rw_port, h.ro_port, h.stats_port):
            claims.append(
                PortClaim(port=port, service="haproxy", owners=["haproxy"], unit="haproxy")
            )
    return claims


def disk_paths(spec: ClusterSpec, roles: list[Role]) -> list[str]:
    paths = []
    if Role.postgres in roles:
        paths.append(spec.postgres.data_path)
    if Role.backup_repo in roles:
        paths.append(spec.backup.repo_path)
    if Role.verify_target in roles:
        paths.append(spec.backup.verify.scratch_path)
    return paths or ["/"]


def host_check_input(spec: ClusterSpec, host: str) -> HostCheckInput:
    roles = spec.host(host).roles
    return HostCheckInput(
        cluster=spec.cluster,
        target=spec.target(host),
        roles=roles,
        disk_paths=disk_paths(spec, roles),
        ports=port_claims(spec, roles),
        package_source=spec.packages.source,
        mirror=spec.packages.mirror,
        apt_proxy=spec.packages.apt_proxy,
        postgres_version=spec.postgres.version,
        thresholds=spec.preflight,
    )


def release_urls(
    source: PackageSource,
    codename: str,
    pg_version: int,
    mirror: str | None,
    configured: list[tuple[str, str]],
) -> list[str]:
    """URLs of the Release files apt must reach for the chosen package source.

    :param configured: (uri, suite) pairs from the host's apt sources.
    """
    if source == PackageSource.pgdg:
        base = mirror or "https://apt.postgresql.org/pub/repos/apt"
        return [f"{base.rstrip('/')}/dists/{codename}-pgdg/InRelease"]
    if source == PackageSource.percona:
        base = mirror or f"http://repo.percona.com/ppg-{pg_version}/apt"
        return [f"{base.rstrip('/')}/dists/{codename}/InRelease"]
    if mirror:
        return [f"{mirror.rstrip('/')}/dists/{codename}/InRelease"]
    urls = [
        f"{uri.rstrip('/')}/dists/{suite}/InRelease"
        for uri, suite in configured
        if suite == codename or suite.startswith(f"{codename}-")
    ]
    return sorted(set(urls))


def evaluate(inp: HostCheckInput, facts: HostFacts) -> list[Finding]:
    """Judge one host's facts against what its roles need."""
    out: list[Finding] = []

    def add(check: str, severity: Severity, message: str) -> None:
        out.append(Finding(check=check, severity=severity, message=message))

    if facts.os_id != "debian":
        add(
            "os",
            Severity.blocking,
            f"{facts.os_pretty}: pgha installs with apt on Debian; this OS is not supported",
        )
    elif facts.os_codename != "bookworm":
        add("os", Severity.warning, f"{facts.os_pretty}: pgha is tested on Debian 12 (bookworm)")
    else:
        add("os", Severity.ok, facts.os_pretty)

    t = inp.thresholds
    needs_resources = Role.postgres in inp.roles or Role.etcd in inp.roles
    if facts.cpus < t.min_cpus:
        add("cpu", Severity.warning, f"{facts.cpus} CPUs, fewer than the {t.min_cpus} wanted")
    else:
        add("cpu", Severity.ok, f"{facts.cpus} CPUs")
    if facts.memory_mb < t.min_memory_mb:
        add(
            "memory",
            Severity.blocking if needs_resources else Severity.warning,
            f"{facts.memory_mb} MB of memory, less than preflight.min_memory_mb "
            f"({t.min_memory_mb} MB)",
        )
    else:
        add("memory", Severity.ok, f"{facts.memory_mb} MB")
    for path, free in facts.disks.items():
        if free < t.min_disk_free_gb:
            add(
                "disk",
                Severity.blocking,
                f"{free:.1f} GiB free for {path}, less than preflight.min_disk_free_gb "
                f"({t.min_disk_free_gb} GiB); free space or move the path",
            )
        else:
            add("disk", Severity.ok, f"{free:.1f} GiB free for {path}")

    if facts.pid1 != "systemd":
        add(
            "systemd",
            Severity.blocking,
            f"PID 1 is {facts.pid1!r}, not systemd; pgha runs every service as a systemd unit",
        )
    elif facts.systemd_state not in ("running", "degraded"):
        add("systemd", Severity.warning, f"systemd reports {facts.systemd_state}")
    elif facts.systemd_state == "degraded":
        add(
            "systemd",
            Severity.warning,
            "systemd is degraded (some unit failed); see `systemctl --failed`",
        )
    else:
        add("systemd", Severity.ok, "systemd is running")

    if facts.time_synchronized is True:
        add("time", Severity.ok, facts.time_detail or "clock synchronized")
    elif facts.time_synchronized is False:
        add(
            "time",
            Severity.warning,
            f"clock not synchronized: {facts.time_detail}; enable systemd-timesyncd or chrony "
            "(etcd and Patroni leases assume close clocks)",
        )
    else:
        add("time", Severity.warning, f"time sync state unknown: {facts.time_detail}")

    for claim in inp.ports:
        holder = facts.busy_ports.get(claim.port)
        if holder is None:
            continue
        if holder in claim.owners:
            add("ports", Severity.ok, f"{claim.port} is held by {holder} ({claim.service})")
        elif holder == "?" and claim.unit in facts.active_units:
            add("ports", Severity.ok, f"{claim.port} is held while {claim.unit} is active")
        elif holder == "?":
            add(
                "ports",
                Severity.blocking,
                f"port {claim.port} (needed by {claim.service}) is in use by a process pgha "
                f"cannot name, and {claim.unit or claim.service} is not active; find it with "
                f"`ss -ltnp 'sport = :{claim.port}'` and stop it",
            )
        else:
            add(
                "ports",
                Severity.blocking,
                f"port {claim.port} (needed by {claim.service}) is in use by {holder}; stop "
                "it or change the port in the spec",
            )
    if not any(f.check == "ports" and f.severity == Severity.blocking for f in out):
        add(
            "ports",
            Severity.ok,
            "free: " + ", ".join(str(c.port) for c in inp.ports) if inp.ports else "none needed",
        )

    if not facts.source_urls:
        add(
            "packages",
            Severity.blocking,
            f"no apt source for {facts.os_codename} configured; set packages.mirror in the spec",
        )
    for url in facts.source_urls:
        if url in facts.source_errors:
            add(
                "packages",
                Severity.blocking,
                f"{url} unreachable: {facts.source_errors[url]}; check the network or "
                "set packages.mirror / packages.apt_proxy",
            )
        else:
            add("packages", Severity.ok, f"{url} reachable")
    return out
