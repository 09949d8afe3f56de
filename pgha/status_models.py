"""What `pgha status` reports: the live cluster, part by part, and what could not be read."""

from __future__ import annotations

from pgha.models import Model
from pgha.spec import ClusterSpec


class StatusInput(Model):
    spec: ClusterSpec


#: Patroni's names for the member that leads (master before 3.0; leader in /cluster).
LEADER_ROLES = ("leader", "master", "primary")
#: ... and for a member that follows it.
REPLICA_ROLES = ("replica", "sync_standby")


class Member(Model):
    name: str
    host: str
    role: str
    state: str
    timeline: int | None = None
    lag_bytes: int | None = None


class PatroniStatus(Model):
    members: list[Member]
    #: The host whose REST API answered.
    source: str


class EtcdMember(Model):
    endpoint: str
    healthy: bool
    leader: bool
    version: str = ""


class EtcdStatus(Model):
    members: list[EtcdMember]

    @property
    def leader(self) -> str:
        return next((m.endpoint for m in self.members if m.leader), "")


class Backend(Model):
    listener: str
    server: str
    status: str


class ProxyStatus(Model):
    host: str
    holds_vip: bool
    haproxy: str
    keepalived: str
    backends: list[Backend]


class BackupSet(Model):
    label: str
    type: str
    started: int
    stopped: int
    size_bytes: int
    repo_size_bytes: int


class BackupStatus(Model):
    stanza: str
    status: str
    backups: list[BackupSet]


class Unreadable(Model):
    """A part of the cluster that did not answer, and why."""

    part: str
    host: str
    error: str


class ClusterStatus(Model):
    cluster: str
    patroni: PatroniStatus | None = None
    etcd: EtcdStatus | None = None
    proxies: list[ProxyStatus] = []
    backups: BackupStatus | None = None
    unreadable: list[Unreadable] = []
