"""PatroniUpgrade on the real dev server with fake members: maintenance mode around the
members' restarts, replicas first, and maintenance mode ended even when a restart fails;
a PyPI release in the spec installed with patroni.ensure_release, and a member whose
running Patroni is not its package restarted too."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from pgha.operations import PATRONI_UPGRADE, start_operation
from pgha.rolling_models import PatroniUpgradeInput, PatroniUpgradeReport, ResolvedVersions
from pgha.spec import ClusterSpec
from pgha.steps import HostStep, StepResult
from pgha.worker import build_worker
from pgha.workflows.patroni_upgrade import PatroniUpgrade
from tests.workflows.probe_fake import fake_probe, fake_whole

NEW = "3.0.4-1"


class FakeMembers:
    def __init__(self) -> None:
        self.version = {h: "3.0.2-1" for h in ("db1", "db2", "db3")}
        #: What the running Patroni says it is; a restart runs what is installed.
        self.running = {h: "3.0.2" for h in ("db1", "db2", "db3")}
        self.release = {h: "" for h in ("db1", "db2", "db3")}
        self.paused = False
        self.fail_on = ""
        self.calls: list[tuple[str, str]] = []

    def activities(self) -> list[Callable[..., Any]]:
        c = self

        @activity.defn(name="rolling.resolve_versions")
        async def resolve(step: HostStep) -> ResolvedVersions:
            return ResolvedVersions(target={"patroni": NEW}, installed={})

        @activity.defn(name="rolling.package_versions")
        async def versions(step: HostStep) -> StepResult:
            return StepResult(host=step.host, changed=False, summary="v",
                              facts={"patroni": c.version[step.host]})  # fmt: skip

        @activity.defn(name="rolling.set_pause")
        async def set_pause(step: HostStep) -> StepResult:
            c.paused = step.params["paused"] == "yes"
            c.calls.append(("pause" if c.paused else "resume", step.host))
            return StepResult(host=step.host, changed=True, summary="ok")

        @activity.defn(name="rolling.install")
        async def install(step: HostStep) -> StepResult:
            assert c.paused
            c.calls.append(("install", step.host))
            c.version[step.host] = NEW
            return StepResult(host=step.host, changed=True, summary="installed")

        @activity.defn(name="patroni.ensure_release")
        async def ensure_release(step: HostStep) -> StepResult:
            assert c.paused
            c.calls.append(("release", step.host))
            c.release[step.host] = step.spec.patroni.pypi_version or ""
            return StepResult(host=step.host, changed=True, summary="venv")

        @activity.defn(name="patroni.running_version")
        async def running(step: HostStep) -> StepResult:
            return StepResult(host=step.host, changed=False, summary="runs",
                              facts={"patroni": c.running[step.host]})  # fmt: skip

        @activity.defn(name="rolling.restart_patroni")
        async def restart(step: HostStep) -> StepResult:
            assert c.paused, "Patroni restarts only in maintenance mode"
            c.calls.append(("restart", step.host))
            if step.host == c.fail_on:
                raise RuntimeError("Patroni did not come back")
            c.running[step.host] = c.release[step.host] or c.version[step.host].split("-")[0]
            return StepResult(host=step.host, changed=True, summary="restarted",
                              facts={"postgres_restarted": False})  # fmt: skip

        return [fake_whole(), resolve, versions, set_pause, install, ensure_release, running,
                restart, fake_probe()]  # fmt: skip


async def run(
    env: WorkflowEnvironment, spec: ClusterSpec, fake: FakeMembers, version: str = NEW
) -> Any:
    task_queue = f"patroni-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[PatroniUpgrade],
                            activities=fake.activities()):  # fmt: skip
        handle = await start_operation(env.client, PATRONI_UPGRADE, spec.cluster,
                                       PatroniUpgradeInput(spec=spec, version=version),
                                       task_queue=task_queue)  # fmt: skip
        return await handle.result()


async def test_every_patroni_restarts_in_maintenance_mode_replicas_first(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeMembers()
    report = PatroniUpgradeReport.model_validate(await run(env, spec, fake))
    assert fake.calls[0] == ("pause", "db1") and fake.calls[-1] == ("resume", "db1")
    assert [h for a, h in fake.calls if a == "restart"] == ["db3", "db2", "db1"]
    assert report.restarted == ["db3", "db2", "db1"] and report.postgres_restarted == []
    assert set(report.versions_after.values()) == {NEW} and not fake.paused


async def test_a_failed_restart_still_ends_maintenance_mode(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeMembers()
    fake.fail_on = "db2"
    with pytest.raises(WorkflowFailureError):
        await run(env, spec, fake)
    assert not fake.paused and fake.calls[-1] == ("resume", "db1")
    assert ("restart", "db1") not in fake.calls  # nothing after the failed member


def with_release(spec: ClusterSpec, version: str) -> ClusterSpec:
    return spec.model_copy(update={"patroni": spec.patroni.model_copy(
        update={"pypi_version": version})})  # fmt: skip


async def test_a_pypi_release_is_installed_and_run_on_every_member(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeMembers()
    report = PatroniUpgradeReport.model_validate(
        await run(env, with_release(spec, "3.0.4"), fake, "3.0.4")
    )
    assert [a for a, h in fake.calls if h == "db3"] == ["release", "restart"]
    assert ("install", "db3") not in fake.calls  # no apt for a release
    assert report.restarted == ["db3", "db2", "db1"] and report.version == "3.0.4"
    assert report.versions_after == {"db1": "3.0.4", "db2": "3.0.4", "db3": "3.0.4"}


async def test_another_version_than_the_spec_release_is_refused_before_anything(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeMembers()
    with pytest.raises(WorkflowFailureError) as caught:
        await run(env, with_release(spec, "3.0.4"), fake, "3.3.0")
    assert "set patroni.pypi_version: 3.3.0 in the spec" in str(caught.value.cause)
    assert fake.calls == []


async def test_back_to_the_package_restarts_the_members_still_running_a_release(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    fake = FakeMembers()
    fake.version = {h: NEW for h in fake.version}  # the package is current everywhere
    fake.running = {"db1": "3.0.4", "db2": "3.0.4", "db3": "3.0.5"}  # but db3 runs a venv
    report = PatroniUpgradeReport.model_validate(await run(env, spec, fake))
    assert report.restarted == ["db3"]
    assert ("install", "db3") in fake.calls and fake.running["db3"] == "3.0.4"
    assert report.versions_after == {"db1": NEW, "db2": NEW, "db3": NEW}
