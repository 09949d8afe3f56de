"""PgbackrestUpgrade on the real dev server with fake hosts: every host installs at once
(the repository and its clients must match), then the repository's TLS server restarts,
then archiving is checked; hosts on the version are skipped; a broken archive refuses the
upgrade before anything changes; a failed install stops it and says what that means."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from pgha.activities.converge import permanent
from pgha.operations import PGBACKREST_UPGRADE, start_operation
from pgha.rolling_models import PgbackrestUpgradeInput, PgbackrestUpgradeReport, ResolvedVersions
from pgha.spec import ClusterSpec
from pgha.steps import HostStep, StepResult
from pgha.worker import build_worker
from pgha.workflows.pgbackrest_upgrade import PgbackrestUpgrade
from tests.workflows.probe_fake import fake_probe, fake_whole

OLD, NEW = "2.45-1", "2.49-1"
HOSTS = ("backup1", "db1", "db2", "db3")


class FakeBackrest:
    def __init__(self) -> None:
        self.installed = dict.fromkeys(HOSTS, OLD)
        self.archiving = True
        self.fail_install_on = ""
        self.calls: list[tuple[str, str]] = []
        self.installing = 0
        self.most_at_once = 0

    def activities(self) -> list[Callable[..., Any]]:
        c = self

        @activity.defn(name="backup.check_archiving")
        async def check(step: HostStep) -> float:
            c.calls.append(("check", step.host))
            if not c.archiving:
                raise permanent("archive_command failed: pgbackrest exited 82", "ArchivingBroken")
            return 1.5

        @activity.defn(name="rolling.resolve_versions")
        async def resolve(step: HostStep) -> ResolvedVersions:
            return ResolvedVersions(target={"pgbackrest": NEW}, installed={"pgbackrest": OLD})

        @activity.defn(name="rolling.package_versions")
        async def versions(step: HostStep) -> StepResult:
            return StepResult(host=step.host, changed=False, summary="v",
                              facts={"pgbackrest": c.installed[step.host]})  # fmt: skip

        @activity.defn(name="rolling.install")
        async def install(step: HostStep) -> StepResult:
            c.calls.append(("install", step.host))
            c.installing += 1
            c.most_at_once = max(c.most_at_once, c.installing)
            await asyncio.sleep(0.3)
            c.installing -= 1
            if step.host == c.fail_install_on:
                raise permanent("E: Version '2.49-1' for 'pgbackrest' was not found",
                                "PackageNotFound")  # fmt: skip
            c.installed[step.host] = NEW
            return StepResult(host=step.host, changed=True, summary="installed")

        @activity.defn(name="rolling.restart_units")
        async def restart(step: HostStep) -> StepResult:
            c.calls.append(("restart " + step.params["units"], step.host))
            return StepResult(host=step.host, changed=True, summary="restarted")

        return [fake_whole(HOSTS[1:]), check, resolve, versions, install, restart, fake_probe()]


async def run(env: WorkflowEnvironment, spec: ClusterSpec, fake: FakeBackrest) -> Any:
    task_queue = f"pgbackrest-upgrade-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[PgbackrestUpgrade],
                            activities=fake.activities()):  # fmt: skip
        inp = PgbackrestUpgradeInput(spec=spec, version="2.49")
        handle = await start_operation(env.client, PGBACKREST_UPGRADE, spec.cluster, inp,
                                       task_queue=task_queue)  # fmt: skip
        return await handle.result()


async def test_every_host_installs_at_once_then_the_server_restarts_then_archiving_is_checked(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeBackrest()
    report = PgbackrestUpgradeReport.model_validate(await run(env, spec, fake))
    assert fake.most_at_once == len(HOSTS)
    order = [a for a, _ in fake.calls]
    assert order[0] == "check"  # the gate
    assert order[1:5] == ["install"] * 4
    assert order[5:] == ["restart pgbackrest", "check"]
    assert ("restart pgbackrest", "backup1") in fake.calls
    assert sorted(report.installed_on) == sorted(HOSTS) and report.server_restarted
    assert set(report.versions_after.values()) == {NEW} and report.check_s == 1.5


async def test_hosts_on_the_version_are_skipped_and_none_left_changes_nothing(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeBackrest()
    fake.installed["db2"] = NEW
    report = PgbackrestUpgradeReport.model_validate(await run(env, spec, fake))
    assert ("install", "db2") not in fake.calls and "db2" not in report.installed_on

    done = FakeBackrest()
    done.installed = dict.fromkeys(HOSTS, NEW)
    nothing = PgbackrestUpgradeReport.model_validate(await run(env, spec, done))
    assert nothing.installed_on == [] and not nothing.server_restarted
    assert [a for a, _ in done.calls] == ["check"] and nothing.cost is None


async def test_broken_archiving_refuses_the_upgrade_before_any_install(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeBackrest()
    fake.archiving = False
    with pytest.raises(WorkflowFailureError) as err:
        await run(env, spec, fake)
    assert "refused, nothing was changed" in str(err.value.cause)
    assert [a for a, _ in fake.calls] == ["check"]


async def test_a_failed_install_stops_the_upgrade_and_says_archiving_may_fail(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeBackrest()
    fake.fail_install_on = "db3"
    with pytest.raises(WorkflowFailureError) as err:
        await run(env, spec, fake)
    message = str(err.value.cause)
    assert "stopped" in message and "db3" in message and "Archiving may be failing" in message
    assert not any(a.startswith("restart") for a, _ in fake.calls)
