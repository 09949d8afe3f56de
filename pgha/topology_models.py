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
                    "remove-node handle database-only hosts (etcd membership changes are not "
                    "built yet)")  # fmt: skip
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
