"""Fake reconfigure activities under the real names: a plan the test sets, members that
get a pending restart when the DCS changes, a restart that can fail."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from temporalio import activity

from pgha.activities.converge import permanent
from pgha.reconfigure_models import ReconfigurePlan, ReconfigureReport, SettingChange
from pgha.status_models import Member, PatroniStatus
from pgha.steps import HostStep, StepResult
from tests.workflows.probe_fake import fake_probe

MEMBERS = ("db1", "db2", "db3")


class FakeReconfigureCluster:
    def __init__(self, plan: ReconfigurePlan) -> None:
        self.plan = plan
        self.leader = "db1"
        self.pending: set[str] = set()
        self.broken: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.blocked = asyncio.Event()
        self.writes_down = False
        self.saved: list[ReconfigureReport] = []
        #: A member whose restart takes a while (a cancel can arrive in the middle).
        self.slow_restart_on = ""
        self.restarting = asyncio.Event()

    def view(self) -> PatroniStatus:
        return PatroniStatus(source="db1", members=[
            Member(name=h, host=h, role="leader" if h == self.leader else "replica",
                   state="running", timeline=2, lag_bytes=None if h == self.leader else 0)
            for h in MEMBERS
        ])  # fmt: skip

    def steps(self) -> list[tuple[str, str]]:
        return [(a, h) for a, h in self.calls if a not in ("healthy", "plan", "pending")]

    def activities(self) -> list[Callable[..., Any]]:
        c = self

        @activity.defn(name="drill.wait_healthy")
        async def wait_healthy(step: HostStep) -> PatroniStatus:
            c.calls.append(("healthy", ""))
            return c.view()

        @activity.defn(name="reconfigure.plan")
        async def plan(step: HostStep) -> ReconfigurePlan:
            c.calls.append(("plan", ""))
            return c.plan

        def converge(name: str) -> Callable[..., Any]:
            @activity.defn(name=name)
            async def apply(step: HostStep) -> StepResult:
                c.calls.append((name, step.host))
                return StepResult(host=step.host, changed=True, summary="reloaded")

            return apply

        @activity.defn(name="reconfigure.apply_dcs")
        async def apply_dcs(step: HostStep) -> StepResult:
            changes = [SettingChange.model_validate(x) for x in json.loads(step.params["changes"])]
            c.calls.append(("dcs", step.host))
            if any(x.restart for x in changes):
                c.pending = set(MEMBERS)
            return StepResult(host=step.host, changed=True, summary="DCS changed")

        @activity.defn(name="reconfigure.pending_restarts")
        async def pending_restarts(step: HostStep) -> list[str]:
            c.calls.append(("pending", ""))
            return sorted(c.pending)

        @activity.defn(name="reconfigure.restart_pending")
        async def restart_pending(step: HostStep) -> StepResult:
            c.calls.append(("restart", step.host))
            if step.host == c.slow_restart_on:
                c.restarting.set()
                await asyncio.sleep(1.5)
            if step.host in c.broken:
                c.blocked.set()
                raise permanent(f"host {step.host}: PostgreSQL does not answer", "RestartFailed")
            c.pending.discard(step.host)
            return StepResult(host=step.host, changed=True, summary="restarted")

        @activity.defn(name="rolling.set_drained")
        async def set_drained(step: HostStep) -> StepResult:
            c.calls.append(("drain" if step.params["drained"] == "yes" else "undrain", step.host))
            return StepResult(host=step.host, changed=True, summary="tags")

        @activity.defn(name="rolling.switchover")
        async def switchover(step: HostStep) -> StepResult:
            c.calls.append(("switchover", step.host))
            c.writes_down = True
            await asyncio.sleep(0.35)
            c.leader, c.writes_down = step.params["candidate"], False
            return StepResult(host=step.host, changed=True, summary="switched")

        @activity.defn(name="reports.save_reconfigure")
        async def save(report: ReconfigureReport) -> str:
            c.saved.append(report)
            return f"reconfigure-{len(c.saved)}"

        probe = fake_probe(lambda: c.writes_down)

        services = ["patroni.ensure_config", "haproxy.ensure_config", "keepalived.ensure_config",
                    "pgbouncer.ensure_config", "pgbackrest.ensure_config"]  # fmt: skip
        return [wait_healthy, plan, apply_dcs, pending_restarts, restart_pending, set_drained,
                switchover, save, probe, *(converge(n) for n in services)]  # fmt: skip
