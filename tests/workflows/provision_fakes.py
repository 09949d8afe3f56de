"""Fake provisioning activities under the real names: they record calls and converge nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from pgha.checks.preflight import HostCheckInput, HostReport
from pgha.steps import HostStep, StepResult
from tests.workflows.fakes import ok_report

STEP_ACTIVITIES = [
    "packages.ensure_host",
    "etcd.read_state",
    "etcd.ensure_member",
    "etcd.check_cluster",
    "patroni.ensure_config",
    "patroni.start_member",
    "patroni.wait_leader",
    "patroni.wait_replicas",
    "haproxy.ensure_config",
    "keepalived.ensure_config",
    "keepalived.check_vip",
    "pgbouncer.ensure_config",
    "pgbackrest.ensure_keypair",
    "pgbackrest.ensure_trust",
    "pgbackrest.ensure_tls",
    "pgbackrest.ensure_config",
    "pgbackrest.ensure_stanza",
    "pgbackrest.ensure_first_backup",
    "postgres.ensure_app",
    "cluster.verify_end_to_end",
    "guardian.ensure_running",
]

Facts = Callable[[HostStep], dict[str, Any]]


class Recorder:
    """Fakes for every provisioning activity; ``calls`` is (activity, host, params) in order."""

    def __init__(self, facts: dict[str, Facts] | None = None, changed: bool = True) -> None:
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.facts = {
            "etcd.read_state": lambda s: {"token": ""},
            "patroni.wait_leader": lambda s: {"leader": s.host},
            "keepalived.check_vip": lambda s: {"holds_vip": s.host == "proxy1"},
            "pgbackrest.ensure_keypair": lambda s: {
                "user": "postgres",
                "public_key": f"k-{s.host}",
            },
            "cluster.verify_end_to_end": lambda s: {"leader": "db1"},
            **(facts or {}),
        }
        self.changed = changed

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="preflight.check_host")
        async def check_host(inp: HostCheckInput) -> HostReport:
            self.calls.append(("preflight.check_host", inp.target.name, {}))
            return ok_report(inp)

        return [check_host, *(self._step(name) for name in STEP_ACTIVITIES)]

    def _step(self, name: str) -> Callable[..., Any]:
        @activity.defn(name=name)
        async def step(inp: HostStep) -> StepResult:
            self.calls.append((name, inp.host, dict(inp.params)))
            facts = self.facts.get(name, lambda s: {})(inp)
            return StepResult(host=inp.host, changed=self.changed, summary=f"{name} done",
                              facts=facts)  # fmt: skip

        return step

    def order(self, name: str, host: str | None = None) -> list[int]:
        return [i for i, c in enumerate(self.calls) if c[0] == name and host in (None, c[1])]
