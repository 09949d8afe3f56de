"""EtcdUpgrade on the real dev server with fake members: followers first and the etcd
leader last, leadership handed off before a member's package changes, members already on
the version skipped (unless a rolling restart is asked for), and a member that does not
come back stops the upgrade with every member after it untouched."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from pgha.activities.converge import permanent
from pgha.operations import ETCD_UPGRADE, start_operation
from pgha.rolling_models import EtcdUpgradeInput, EtcdUpgradeReport, ResolvedVersions
from pgha.spec import ClusterSpec
from pgha.steps import HostStep, StepResult
from pgha.worker import build_worker
from pgha.workflows.etcd_upgrade import EtcdUpgrade
from tests.workflows.probe_fake import fake_probe, fake_whole

OLD, NEW = "3.4.23-4+b4", "3.4.30-1"
MEMBERS = ("db1", "db2", "db3")


class FakeEtcd:
    def __init__(self) -> None:
        self.leader = "db2"
        self.installed = dict.fromkeys(MEMBERS, OLD)
        self.running = dict.fromkeys(MEMBERS, "3.4.23")
        self.fail_on = ""
        self.unhealthy = False
        #: (what, host) of every step that changes something, in order.
        self.calls: list[tuple[str, str]] = []

    def touched(self, host: str) -> list[str]:
        return [a for a, h in self.calls if h == host]

    def activities(self) -> list[Callable[..., Any]]:
        c = self

        @activity.defn(name="etcd.check_cluster")
        async def check_cluster(step: HostStep) -> StepResult:
            if c.unhealthy:
                raise permanent("db3 (http://10.0.0.13:2379: unhealthy)", "EtcdMembership")
            return StepResult(host=step.host, changed=False, summary="healthy",
                              facts={"leader": c.leader, "members": list(MEMBERS)})  # fmt: skip

        @activity.defn(name="rolling.resolve_versions")
        async def resolve(step: HostStep) -> ResolvedVersions:
            assert set(step.params["packages"].split('"')) >= {"etcd-server", "etcd-client"}
            return ResolvedVersions(target={"etcd-server": NEW, "etcd-client": NEW},
                                    installed={"etcd-server": OLD})  # fmt: skip

        @activity.defn(name="etcd.member_versions")
        async def versions(step: HostStep) -> StepResult:
            return StepResult(host=step.host, changed=False, summary="v", facts={
                "installed": c.installed[step.host], "running": c.running[step.host]})  # fmt: skip

        @activity.defn(name="etcd.hand_off_leadership")
        async def hand_off(step: HostStep) -> StepResult:
            c.calls.append(("hand-off", step.host))
            if c.leader == step.host:
                c.leader = next(m for m in MEMBERS if m != step.host)
            return StepResult(host=step.host, changed=True, summary="handed off")

        @activity.defn(name="rolling.install")
        async def install(step: HostStep) -> StepResult:
            assert c.leader != step.host, "a package change restarts etcd: not on the leader"
            c.calls.append(("install", step.host))
            c.installed[step.host] = NEW
            return StepResult(host=step.host, changed=True, summary="installed")

        @activity.defn(name="etcd.restart_member")
        async def restart(step: HostStep) -> StepResult:
            c.calls.append(("restart", step.host))
            if step.host == c.fail_on:
                raise permanent(f"etcd on {step.host} is not healthy after 60 s",
                                "EtcdNotHealthy")  # fmt: skip
            c.running[step.host] = c.installed[step.host].split("-")[0]
            return StepResult(host=step.host, changed=True, summary="restarted",
                              facts={"running": c.running[step.host]})  # fmt: skip

        return [fake_whole(MEMBERS), check_cluster, resolve, versions, hand_off, install, restart,
                fake_probe()]  # fmt: skip


async def run(env: WorkflowEnvironment, spec: ClusterSpec, fake: FakeEtcd, **kw: Any) -> Any:
    task_queue = f"etcd-upgrade-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[EtcdUpgrade],
                            activities=fake.activities()):  # fmt: skip
        inp = EtcdUpgradeInput(spec=spec, version=kw.pop("version", "3.4.30"), **kw)
        handle = await start_operation(env.client, ETCD_UPGRADE, spec.cluster, inp,
                                       task_queue=task_queue)  # fmt: skip
        return await handle.result()


async def test_followers_first_the_leader_last_and_never_installed_on_while_it_leads(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeEtcd()
    report = EtcdUpgradeReport.model_validate(await run(env, spec, fake))
    assert report.restarted == ["db1", "db3", "db2"]
    for member in MEMBERS:
        assert fake.touched(member) == ["hand-off", "install", "restart"]
    assert report.leader_before == "db2" and report.leader_after != "db2"
    assert {v.running for v in report.versions_after.values()} == {"3.4.30"}
    assert {v.installed for v in report.versions_after.values()} == {NEW}
    assert report.patroni_leader_before == report.patroni_leader_after == "db1"
    assert report.verdict is not None


async def test_members_on_the_version_are_skipped_unless_a_rolling_restart_is_asked(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeEtcd()
    fake.installed["db1"], fake.running["db1"] = NEW, "3.4.30"
    report = EtcdUpgradeReport.model_validate(await run(env, spec, fake))
    assert report.restarted == ["db3", "db2"] and fake.touched("db1") == []

    again = FakeEtcd()
    again.installed = dict.fromkeys(MEMBERS, NEW)
    again.running = dict.fromkeys(MEMBERS, "3.4.30")
    nothing = EtcdUpgradeReport.model_validate(await run(env, spec, again))
    assert nothing.restarted == [] and again.calls == [] and nothing.cost is None
    everyone = EtcdUpgradeReport.model_validate(await run(env, spec, again, restart_all=True))
    assert everyone.restarted == ["db1", "db3", "db2"]


async def test_a_member_that_does_not_come_back_stops_the_upgrade_there(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeEtcd()
    fake.fail_on = "db3"
    with pytest.raises(WorkflowFailureError) as err:
        await run(env, spec, fake)
    message = str(err.value.cause)
    assert "stopped at db3" in message and "not touched: db2" in message, message
    assert fake.touched("db2") == []  # the leader, last in line, was never touched
    assert fake.leader == "db2"


async def test_an_unhealthy_etcd_refuses_the_upgrade_and_changes_nothing(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeEtcd()
    fake.unhealthy = True
    with pytest.raises(WorkflowFailureError) as err:
        await run(env, spec, fake)
    assert "refused, nothing was changed" in str(err.value.cause)
    assert fake.calls == []
