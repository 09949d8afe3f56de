"""Input and result of the Provision workflow. Pure models; no secret values."""

from __future__ import annotations

from pgha.models import Model
from pgha.spec import ClusterSpec


class ProvisionInput(Model):
    spec: ClusterSpec


class Endpoint(Model):
    """A component the operator can reach, for the report."""

    component: str
    host: str
    address: str
    port: int


class ProvisionResult(Model):
    cluster: str
    steps: int
    changed: int
    warnings: list[str]
    endpoints: list[Endpoint]
    read_write: str
    read_only: str
    pooled: str | None = None
    leader: str
    #: What the end-to-end check proved, in a sentence.
    verified: str
