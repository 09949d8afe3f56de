"""Fake rolling-upgrade activities under the real names: three members with installed
packages and a running version, a restart that can leave a member broken, a probe that
waits for the workflow like the real one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from temporalio import activity

from pgha.activities.converge import permanent
from pgha.rolling_models import MemberVersions, ResolvedVersions, UpgradeReport
from pgha.status_models import Member, PatroniStatus
from pgha.steps import HostStep, StepResult
from tests.workflows.probe_fake import fake_probe

OLD, NEW = "15.18-0+deb12u1", "15.20-0+deb12u1"
SERVER, CLIENT = "postgresql-15", "postgresql-client-15"


class FakeUpgradeCluster:
    def __init__(self) -> None:
        self.leader = "db1"
        self.installed = {h: OLD for h in ("db1", "db2", "db3")}
        self.running = {h: "15.18" for h in ("db1", "db2", "db3")}
        self.drained: set[str] = set()
        #: Members whose PostgreSQL does not start on the new version (until fixed).
        self.broken_on_new: set[str] = set()
        self.long_transaction_on = ""
        #: (activity, host) in the order they ran.
        self.calls: list[tuple[str, str]] = []
        self.saved: list[UpgradeReport] = []
        self.blocked = asyncio.Event()
        self.writes_down = False
        #: A member whose restart takes a while (a cancel can arrive in the middle).
        self.slow_restart_on = ""
        self.restarting = asyncio.Event()

    def touched(self, host: str) -> list[str]:
        """What changed anything on ``host`` (reads left out)."""
        return [a for a, h in self.calls
                if h == host and a in ("drain", "undrain", "install", "restart")]  # fmt: skip

    def view(self) -> PatroniStatus:
        members = [
            Member(name=h, host=h, role="leader" if h == self.leader else "replica",
                   state="running" if self.running[h] else "start failed", timeline=2,
                   lag_bytes=None if h == self.leader else 0)
            for h in ("db1", "db2", "db3")
        ]  # fmt: skip
        return PatroniStatus(members=members, source="db1")

    def activities(self) -> list[Callable[..., Any]]:
        c = self

        @activity.defn(name="drill.wait_healthy")
        async def wait_healthy(step: HostStep) -> PatroniStatus:
            c.calls.append(("healthy", ""))
            down = [h for h, v in c.running.items() if not v]
            if down:
                c.blocked.set()
                raise permanent(f"the cluster is not whole: {down[0]} failed to start and has "
                                "not run for 45 s", "NotHealed")  # fmt: skip
            return c.view()

        @activity.defn(name="rolling.resolve_versions")
        async def resolve(step: HostStep) -> ResolvedVersions:
            c.calls.append(("resolve", step.host))
            asked = json.loads(step.params["packages"])
            target = {n: NEW if v == "15.20" else OLD for n, v in asked.items()}
            return ResolvedVersions(target=target, installed={n: OLD for n in asked})

        @activity.defn(name="rolling.versions")
        async def versions(step: HostStep) -> list[MemberVersions]:
            c.calls.append(("versions", ""))
            return [MemberVersions(member=h, server=c.running[h],
                                   packages={SERVER: v, CLIENT: v})
                    for h, v in c.installed.items()]  # fmt: skip

        @activity.defn(name="rolling.long_transactions")
        async def long_tx(step: HostStep) -> StepResult:
            c.calls.append(("long_tx", step.host))
            if step.host == c.long_transaction_on:
                said = f"1 transaction(s) open longer than 300 s would be cut off:\n- {step.host}"
                raise permanent(f"{said}: pid 42, app@app, open 400 s", "LongTransactions")
            return StepResult(host=step.host, changed=False, summary="none")

        @activity.defn(name="rolling.set_drained")
        async def set_drained(step: HostStep) -> StepResult:
            drained = step.params["drained"] == "yes"
            c.calls.append(("drain" if drained else "undrain", step.host))
            (c.drained.add if drained else c.drained.discard)(step.host)
            return StepResult(host=step.host, changed=True, summary=f"drained={drained}")

        @activity.defn(name="rolling.install")
        async def install(step: HostStep) -> StepResult:
            c.calls.append(("install", step.host))
            c.installed[step.host] = json.loads(step.params["packages"])[SERVER]
            return StepResult(host=step.host, changed=True, summary="installed")

        @activity.defn(name="rolling.restart")
        async def restart(step: HostStep) -> StepResult:
            c.calls.append(("restart", step.host))
            assert step.host != c.leader, "a leader is never restarted in place"
            if step.host == c.slow_restart_on:
                c.restarting.set()
                await asyncio.sleep(1.5)  # runs to its end: a cancel does not stop a restart
            version = c.installed[step.host].split("-")[0]
            broken = version == "15.20" and step.host in c.broken_on_new
            c.running[step.host] = "" if broken else version
            if broken:
                c.blocked.set()
                raise permanent(f"host {step.host}: PostgreSQL did not come back with 15.20",
                                "RestartFailed")  # fmt: skip
            return StepResult(host=step.host, changed=True, summary=f"restarted on {version}")

        @activity.defn(name="rolling.switchover")
        async def switchover(step: HostStep) -> StepResult:
            c.calls.append(("switchover", step.host))
            assert step.host == c.leader
            c.writes_down = True  # the one write gap: the old primary stops, the new one starts
            await asyncio.sleep(0.35)
            c.leader = step.params["candidate"]
            c.writes_down = False
            return StepResult(host=step.host, changed=True, summary="switched")

        probe = fake_probe(lambda: c.writes_down)

        @activity.defn(name="reports.save_upgrade")
        async def save(report: UpgradeReport) -> str:
            c.saved.append(report)
            return "report-1"

        return [wait_healthy, resolve, versions, long_tx, set_drained, install, restart,
                switchover, probe, save]  # fmt: skip
