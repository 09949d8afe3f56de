"""What add-node and remove-node take and report. Pure models."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from pgha.models import Model
from pgha.spec import ClusterSpec, Role


class NodeInput(Model):
    """``spec`` lists ``host`` (with role postgres): for add-node the spec it should end
    with, for remove-node the spec it starts from."""

    spec: ClusterSpec
    host: str
    max_lag_bytes: int = Field(16 * 1024 * 1024, ge=0)

    def without_host(self) -> ClusterSpec:
        """The spec with ``host`` left out (what the rest of the cluster converges to)."""
        return self.spec.model_copy(
            update={"hosts": [h for h in self.spec.hosts if h.name != self.host]}
        )

    def problem(self) -> str:
        """Why ``host`` cannot be added or removed as a database node; empty when it can."""
        names = [h.name for h in self.spec.hosts]
        if self.host not in names:
            return f"{self.host} is not in the spec of cluster {self.spec.cluster}"
        roles = self.spec.host(self.host).roles
        if Role.postgres not in roles:
            return f"{self.host} has no role postgres in the spec"
        other = [r.value for r in roles if r is not Role.postgres]
        if other:
            return (f"{self.host} also has role(s) {', '.join(other)}; add-node and "
                    "remove-node handle database-only hosts (change etcd membership with "
                    "etcd-add / etcd-remove as a separate step)")  # fmt: skip
        return ""


class NodeReport(Model):
    cluster: str
    workflow_id: str
    host: str
    #: "added" or "removed".
    action: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    #: The members after, as Patroni lists them.
    members: list[str]
    leader: str
    #: What the operator does next (remove the host from the spec file...).
    next_steps: list[str] = []


class EtcdMemberInput(Model):
    """``spec`` lists ``host`` with role etcd: for etcd-add the spec it should end with,
    for etcd-remove the spec it starts from."""

    spec: ClusterSpec
    host: str

    def without_member(self) -> ClusterSpec:
        """The spec with ``host``'s etcd role dropped (the host left out if it had no other)."""
        hosts = []
        for h in self.spec.hosts:
            if h.name != self.host:
                hosts.append(h)
            elif roles := [r for r in h.roles if r is not Role.etcd]:
                hosts.append(h.model_copy(update={"roles": roles}))
        return self.spec.model_copy(update={"hosts": hosts})

    def problem(self) -> str:
        if self.host not in [h.name for h in self.spec.hosts]:
            return f"{self.host} is not in the spec of cluster {self.spec.cluster}"
        if Role.etcd not in self.spec.host(self.host).roles:
            return f"{self.host} has no role etcd in the spec"
        return ""


class EtcdMemberReport(Model):
    cluster: str
    workflow_id: str
    host: str
    #: "added" or "removed".
    action: str
    #: The etcd members after, and which leads.
    members: list[str]
    leader: str
    next_steps: list[str] = []
