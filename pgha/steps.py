"""Inputs and outputs shared by the converge activities of provisioning (and later day-2
operations). Pure models: workflows import them; they hold no secret values."""

from __future__ import annotations

from typing import Any

from pgha.models import HostTarget, Model
from pgha.spec import ClusterSpec


class HostStep(Model):
    """One converge step on one host. The whole spec travels along because rendering a
    host's files needs every member's address; it holds secret references, not values."""

    spec: ClusterSpec
    host: str
    #: Values the workflow decided and the step needs (e.g. the etcd cluster token).
    params: dict[str, str] = {}

    @property
    def target(self) -> HostTarget:
        return self.spec.target(self.host)


class StepResult(Model):
    """What a converge step did on one host: ``changed`` or why it did nothing."""

    host: str
    changed: bool
    summary: str
    #: Things an operator should see in the report (e.g. "no watchdog device: automatic").
    warnings: list[str] = []
    #: Small facts the workflow needs next (member state, token, a public key...).
    facts: dict[str, Any] = {}
