"""ProxyUpgrade on the real dev server with fake proxies: the proxy without the VIP first;
the holder's keepalived stopped, the VIP moved, then the holder upgraded; refused when a
proxy is down."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from pgha.operations import PROXY_UPGRADE, start_operation
from pgha.rolling_models import ProxyUpgradeInput, ProxyUpgradeReport, ResolvedVersions
from pgha.spec import ClusterSpec, Role
from pgha.status_models import ProxyStatus
from pgha.steps import HostStep, StepResult
from pgha.worker import build_worker
from pgha.workflows.proxy_upgrade import ProxyUpgrade
from tests.workflows.probe_fake import fake_probe

NEW = "2.6.12-1+deb12u4"


class FakeProxies:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.holder = names[0]
        self.keepalived = {n: "active" for n in names}
        self.version = {n: "2.6.12-1+deb12u3" for n in names}
        self.calls: list[tuple[str, str]] = []

    def activities(self) -> list[Callable[..., Any]]:
        c = self

        @activity.defn(name="status.proxy")
        async def proxy(step: HostStep) -> ProxyStatus:
            return ProxyStatus(host=step.host, holds_vip=step.host == c.holder, haproxy="active",
                               keepalived=c.keepalived[step.host], backends=[])  # fmt: skip

        @activity.defn(name="rolling.resolve_versions")
        async def resolve(step: HostStep) -> ResolvedVersions:
            return ResolvedVersions(target={"haproxy": NEW}, installed={})

        @activity.defn(name="drill.systemctl")
        async def systemctl(step: HostStep) -> StepResult:
            c.calls.append((f"{step.params['action']} {step.params['units']}", step.host))
            if step.params["units"] == "keepalived":
                up = step.params["action"] == "start"
                c.keepalived[step.host] = "active" if up else "inactive"
                if not up and c.holder == step.host:
                    c.holder = next(n for n in c.names if n != step.host)
            return StepResult(host=step.host, changed=True, summary="ok")

        @activity.defn(name="drill.wait_vip")
        async def wait_vip(step: HostStep) -> str:
            assert c.holder != step.params["not"]
            return c.holder

        @activity.defn(name="rolling.install")
        async def install(step: HostStep) -> StepResult:
            assert c.holder != step.host, "a proxy holding the VIP is never upgraded"
            c.calls.append(("install", step.host))
            c.version[step.host] = json.loads(step.params["packages"])["haproxy"]
            return StepResult(host=step.host, changed=True, summary="installed")

        @activity.defn(name="rolling.restart_units")
        async def restart_units(step: HostStep) -> StepResult:
            c.calls.append(("restart", step.host))
            return StepResult(host=step.host, changed=True, summary="restarted")

        @activity.defn(name="rolling.package_versions")
        async def versions(step: HostStep) -> StepResult:
            return StepResult(host=step.host, changed=False, summary="v",
                              facts={"haproxy": c.version[step.host]})  # fmt: skip

        probe = fake_probe()

        return [proxy, resolve, systemctl, wait_vip, install, restart_units, versions, probe]


async def run(env: WorkflowEnvironment, spec: ClusterSpec, fake: FakeProxies) -> Any:
    task_queue = f"proxies-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[ProxyUpgrade],
                            activities=fake.activities()):  # fmt: skip
        inp = ProxyUpgradeInput(spec=spec, packages={"haproxy": NEW})
        handle = await start_operation(env.client, PROXY_UPGRADE, spec.cluster, inp,
                                       task_queue=task_queue)  # fmt: skip
        return await handle.result()


async def test_the_vip_holder_goes_last_after_the_vip_moved(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    names = [h.name for h in spec.hosts_with(Role.haproxy)]
    fake = FakeProxies(names)
    report = ProxyUpgradeReport.model_validate(await run(env, spec, fake))
    first, holder = names[1], names[0]
    assert report.order == [first, holder]
    assert fake.calls == [
        ("install", first), ("restart", first), ("start keepalived", first),
        ("stop keepalived", holder), ("install", holder), ("restart", holder),
        ("start keepalived", holder),
    ]  # fmt: skip
    assert report.vip_holder == first and set(fake.version.values()) == {NEW}


async def test_a_proxy_down_refuses_the_upgrade(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    names = [h.name for h in spec.hosts_with(Role.haproxy)]
    fake = FakeProxies(names)
    fake.keepalived[names[1]] = "failed"
    with pytest.raises(WorkflowFailureError) as err:
        await run(env, spec, fake)
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "UpgradeRefused"
    assert fake.calls == []
