"""What a rolling upgrade takes, waits on and reports. Pure models shared by the Upgrade
workflow, its activities, the CLI and the report store."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field, model_validator

from pgha.drill_models import Verdict
from pgha.hosts.facts.apt_versions import upstream
from pgha.models import Model
from pgha.spec import ClusterSpec


class UpgradeInput(Model):
    spec: ClusterSpec
    #: Package -> the version asked for: an upstream version ("15.20", any Debian revision
    #: of it) or an exact Debian version ("15.20-0+deb12u1").
    packages: dict[str, str] = Field(min_length=1)
    #: A minor version lower than the installed one (a rollback) is refused without this.
    allow_downgrade: bool = False
    #: Probe writes (and reads) per second through the cluster's endpoints.
    rate: float = Field(20.0, gt=0, le=200)
    #: A member is healthy again when it streams with replay lag at most this.
    max_lag_bytes: int = Field(16 * 1024 * 1024, ge=0)
    #: Client transactions open longer than this block the upgrade (they would be cut off).
    long_transaction_s: int = Field(300, ge=1)
    #: How long a restarted member has to stream again before it counts as failed.
    member_timeout_s: float = Field(180.0, ge=10)

    @model_validator(mode="after")
    def _postgres_packages_only(self) -> UpgradeInput:
        # Other packages need their own restart step (PatroniUpgrade, ProxyUpgrade,
        # EtcdUpgrade, PgbackrestUpgrade): refuse rather than install a package whose
        # service keeps running the old code.
        v = self.spec.postgres.version
        allowed = {f"postgresql-{v}", f"postgresql-client-{v}"}
        other = sorted(set(self.packages) - allowed)
        if other:
            raise ValueError(
                f"this upgrade handles the PostgreSQL {v} packages "
                f"({', '.join(sorted(allowed))}); not {', '.join(other)} (Patroni, HAProxy, "
                "etcd and pgBackRest have their own: --patroni, --haproxy, --etcd, "
                "--pgbackrest)"
            )
        return self


class ResolvedVersions(Model):
    """What the upgrade installs, as the hosts' apt sources name it."""

    #: Package -> exact Debian version to install.
    target: dict[str, str]
    #: Package -> the version installed on the host that resolved them (for a rollback).
    installed: dict[str, str]


class MemberVersions(Model):
    member: str
    #: What the running PostgreSQL says it is ("15.20"); empty when it does not answer.
    server: str
    #: Package -> installed Debian version.
    packages: dict[str, str] = {}


class DecisionAction(StrEnum):
    #: The operator fixed the member: check it again and carry on.
    resume = "resume"
    #: Put the member back on the version it had, then stop.
    rollback = "rollback"
    #: Stop here; the member stays as it is (tagged nofailover/noloadbalance).
    abort = "abort"


class Decision(Model):
    """An operator's answer to an upgrade stopped at an unhealthy member."""

    action: DecisionAction
    by: str = ""
    note: str = ""


class Blocked(Model):
    """Where an upgrade stopped, and why: shown by `pgha watch` and the Web UI."""

    member: str
    reason: str
    since: AwareDatetime


class MemberOutcome(Model):
    member: str
    #: upgraded, already (on the target before), rolled back, failed.
    result: str
    version_before: str = ""
    version_after: str = ""
    detail: str = ""


class RollingCost(Model):
    """What the writers saw over a whole rolling operation (the probe's log). Pure."""

    #: Total time with writes failing: the sum of every failed-to-next-success stretch.
    write_down_s: float = 0.0
    #: Each stretch as (start in seconds since the probe started, length).
    write_gaps: list[tuple[float, float]] = []
    failed_writes: int = 0
    failed_reads: int = 0
    read_down_s: float = 0.0


class RunReport(Model):
    """What every rolling operation's report starts with."""

    cluster: str
    workflow_id: str
    started_at: AwareDatetime
    finished_at: AwareDatetime


class UpgradeReport(Model):
    cluster: str
    workflow_id: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    passed: bool
    reason: str = ""
    packages: dict[str, str]
    versions_before: dict[str, str] = {}
    #: Member -> server version each runs at the end (PostgreSQL's server_version).
    versions_after: dict[str, str] = {}
    members: list[MemberOutcome] = []
    old_leader: str = ""
    new_leader: str = ""
    cost: RollingCost | None = None
    verdict: Verdict | None = None
    decisions: list[Decision] = []
    #: Names the probe's rows in pgha.drill_probe.
    probe_run: str = ""


def server_version_of(packages: dict[str, str]) -> str:
    """The PostgreSQL version a package map installs ("15.20" for postgresql-15 at
    15.20-0+deb12u1), empty when it has no server package. Pure."""
    server = [v for n, v in packages.items()
              if n.startswith("postgresql-") and not n.startswith("postgresql-client")]  # fmt: skip
    return upstream(server[0]) if server else ""


class SwitchoverInput(Model):
    spec: ClusterSpec
    #: The member to hand the primary role to; None: the best replica (the synchronous
    #: standby, else the one with the least lag).
    to: str | None = None
    rate: float = Field(20.0, gt=0, le=200)
    max_lag_bytes: int = Field(16 * 1024 * 1024, ge=0)


class SwitchoverReport(RunReport):
    old_leader: str
    new_leader: str
    cost: RollingCost | None = None
    verdict: Verdict | None = None


#: The packages of a proxy host a proxy upgrade may change.
PROXY_PACKAGES = frozenset({"haproxy", "keepalived", "pgbouncer"})


class ProxyUpgradeInput(Model):
    spec: ClusterSpec
    #: Package -> version asked for ("2.6.12-1+deb12u4", or an upstream version).
    packages: dict[str, str] = Field(min_length=1)
    allow_downgrade: bool = False
    rate: float = Field(20.0, gt=0, le=200)

    @model_validator(mode="after")
    def _proxy_packages_only(self) -> ProxyUpgradeInput:
        other = sorted(set(self.packages) - PROXY_PACKAGES)
        if other:
            raise ValueError(f"a proxy upgrade handles {', '.join(sorted(PROXY_PACKAGES))}; "
                             f"not {', '.join(other)}")  # fmt: skip
        return self


class ProxyUpgradeReport(RunReport):
    packages: dict[str, str]
    #: Proxy -> its packages' versions at the end.
    versions_after: dict[str, dict[str, str]]
    #: The proxy order (the VIP holder last) and where the VIP ended.
    order: list[str]
    vip_holder: str
    cost: RollingCost | None = None
    verdict: Verdict | None = None


class PackageUpgradeInput(Model):
    """A package upgrade on the hosts that have it (Patroni, etcd, pgBackRest)."""

    spec: ClusterSpec
    #: The package version: exact ("3.0.4-1") or upstream ("3.0.4", any revision of it).
    version: str
    allow_downgrade: bool = False
    #: Probe writes (and reads) per second through the cluster's endpoints.
    rate: float = Field(20.0, gt=0, le=200)
    #: The cluster is whole when every replica streams within this of the primary.
    max_lag_bytes: int = Field(16 * 1024 * 1024, ge=0)


class PatroniUpgradeInput(PackageUpgradeInput):
    """The patroni package."""


class PatroniUpgradeReport(RunReport):
    version: str
    #: Member -> patroni package version at the end.
    versions_after: dict[str, str]
    #: Members whose Patroni was restarted, in order; and those whose PostgreSQL restarted
    #: with it (none is the promise of maintenance mode).
    restarted: list[str]
    postgres_restarted: list[str] = []
    cost: RollingCost | None = None
    verdict: Verdict | None = None


class EtcdUpgradeInput(PackageUpgradeInput):
    """etcd-server and etcd-client, at one version."""

    #: Restart members already on the version too: a rolling restart of etcd (it picks up
    #: a changed environment file or certificate, or proves the procedure on a quiet day).
    restart_all: bool = False


class EtcdMemberVersion(Model):
    #: The etcd-server package installed.
    installed: str
    #: What the member's endpoint says it runs ("3.4.23"); "" when it did not answer.
    running: str


class EtcdUpgradeReport(RunReport):
    version: str
    #: Members restarted, in order (followers first, the etcd leader last).
    restarted: list[str]
    #: etcd's leader before and after (leadership is handed off before its member restarts).
    leader_before: str
    leader_after: str
    versions_before: dict[str, EtcdMemberVersion]
    versions_after: dict[str, EtcdMemberVersion]
    #: Patroni's leader before and after: an etcd upgrade must not move it.
    patroni_leader_before: str
    patroni_leader_after: str
    cost: RollingCost | None = None
    verdict: Verdict | None = None


class PgbackrestUpgradeInput(PackageUpgradeInput):
    """The pgbackrest package."""


class PgbackrestUpgradeReport(RunReport):
    version: str
    #: Hosts whose package changed (the others had it already).
    installed_on: list[str]
    #: Host -> the pgbackrest package at the end.
    versions_after: dict[str, str]
    #: Whether the repository's TLS server was restarted into the new binary.
    server_restarted: bool = False
    #: Seconds `pgbackrest check` took after the upgrade (None: backups are off).
    check_s: float | None = None
    cost: RollingCost | None = None
    verdict: Verdict | None = None
