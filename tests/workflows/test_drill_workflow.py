"""The Drill workflow on the real dev server with fake faults: refused on a cluster that is
not whole, heals and reports on every path, judges the writes, fails red on lost ones."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from pgha import cli
from pgha.drill_models import Approval, DrillInput, DrillReport, Scenario
from pgha.operations import DRILL, start_operation
from pgha.progress import Progress
from pgha.spec import ClusterSpec, Role, spec_to_yaml
from pgha.worker import build_worker
from pgha.workflows.drill import Drill
from tests.workflows.drill_fakes import FakeDrillCluster


class Run:
    def __init__(self, env: WorkflowEnvironment, spec: ClusterSpec, fake: FakeDrillCluster,
                 task_queue: str) -> None:  # fmt: skip
        self.env, self.spec, self.fake, self.task_queue = env, spec, fake, task_queue

    async def start(self, scenario: Scenario):  # type: ignore[no-untyped-def]
        inp = DrillInput(spec=self.spec, scenario=scenario, settle_s=1)
        return await start_operation(self.env.client, DRILL, self.spec.cluster, inp,
                                     task_queue=self.task_queue)  # fmt: skip

    async def failure(self, scenario: Scenario) -> ApplicationError:
        handle = await self.start(scenario)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        cause = err.value.cause
        assert isinstance(cause, ApplicationError), err.value
        return cause


def without_approval(spec: ClusterSpec) -> ClusterSpec:
    drill = spec.drill.model_copy(update={"require_approval": False})
    return spec.model_copy(update={"drill": drill})


@contextlib.asynccontextmanager
async def drills_on(
    env: WorkflowEnvironment, spec: ClusterSpec, fake: FakeDrillCluster
) -> AsyncIterator[Run]:
    """A worker running the Drill workflow against ``fake``, on a task queue of its own."""
    task_queue = f"drill-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, workflows=[Drill],
                            activities=fake.activities()):  # fmt: skip
        yield Run(env, spec, fake, task_queue)


@pytest_asyncio.fixture
async def run(env: WorkflowEnvironment, spec: ClusterSpec) -> AsyncIterator[Run]:
    async with drills_on(env, without_approval(spec), FakeDrillCluster()) as r:
        yield r


async def test_switchover_drill_moves_the_leader_and_judges_every_write(run: Run) -> None:
    handle = await run.start(Scenario.switchover)
    report = DrillReport.model_validate(await handle.result())
    assert report.passed and report.healed
    assert (report.old_leader, report.new_leader) == ("db1", "db2")
    assert report.verdict is not None and report.verdict.acknowledged > 5
    assert report.verdict.safe
    assert [e.name for e in report.events] == ["fault", "leader running", "healed"]
    assert report.series is not None  # the timeline picture's data
    assert sum(b.writes_ok for b in report.series.buckets) == report.verdict.acknowledged
    assert run.fake.saved == [report]
    assert report.healing[-1] == "archiving works (pgbackrest check, 1.5 s)"


async def test_a_drill_after_which_archiving_stalls_is_not_healed(run: Run) -> None:
    run.fake.archiving_broken = True
    failure = await run.failure(Scenario.switchover)
    assert failure.type == "DrillFailed" and "did not heal" in failure.message
    report = run.fake.saved[-1]
    assert not report.healed and report.verdict is not None and report.verdict.safe
    assert report.healing[-2].startswith("archiving does not work: ")
    assert "0000000200000000000000AB was not archived" in report.healing[-2]
    # The one remedy healing has found nothing to release on the leader.
    assert report.healing[-1] == "no segment of a timeline older than 2 waits for the archiver"
    # ... on the new leader (the fake switchover moved it to db2), before the check too.
    assert healing_calls(run) == [
        "release_stale_ready@db2", "check_archiving", "release_stale_ready@db2"]  # fmt: skip


def healing_calls(run: Run) -> list[str]:
    return [c for c in run.fake.calls if c == "check_archiving" or c.startswith("release_stale")]


async def test_archiving_held_on_an_old_timelines_segment_is_released_and_healed(
    run: Run,
) -> None:
    run.fake.archiving_broken = run.fake.stale_ready = True
    report = DrillReport.model_validate(await (await run.start(Scenario.switchover)).result())
    assert report.healed
    assert report.healing[-2:] == [
        "marked archived 000000010000000000000007",
        "archiving works (pgbackrest check, 1.5 s)",
    ]
    assert healing_calls(run) == ["release_stale_ready@db2", "check_archiving"]
    assert "stale WAL released" in [e.name for e in report.events]


async def test_an_archiver_held_while_pgbackrest_check_passes_is_released_too(
    run: Run,
) -> None:
    # Seen on the lab: the asynchronous push took the newer segments, so `pgbackrest
    # check` passed, while PostgreSQL's archiver kept retrying an old timeline's segment.
    run.fake.stale_ready = True
    report = DrillReport.model_validate(await (await run.start(Scenario.switchover)).result())
    assert report.healed and not run.fake.stale_ready
    assert "marked archived 000000010000000000000007" in report.healing


async def test_a_failover_drill_reports_patronis_detection_and_promotion(run: Run) -> None:
    report = DrillReport.model_validate(await (await run.start(Scenario.stop_patroni)).result())
    times = report.patroni_times
    assert times is not None and times.detected_s is not None and times.promoted_s is not None
    assert 0 <= times.detected_s <= times.promoted_s < 30
    assert times.history_reason == "no recovery target specified"
    assert times.history_switch_s is not None
    names = [e.name for e in report.events]
    assert names[:3] == ["fault", "old leader gone", "leader running"]
    assert all(e.when is not None for e in report.events)


async def test_healing_reinitialises_members_that_do_not_rejoin(run: Run) -> None:
    run.fake.heals_after_reinit = True
    report = DrillReport.model_validate(await (await run.start(Scenario.stop_patroni)).result())
    assert report.healed and report.reinitialised == ["db3"]
    after_fault = run.fake.calls[run.fake.calls.index("fault") :]
    assert after_fault.count("wait_healthy") == 2 and "reinit" in after_fault
    assert after_fault.index("reinit") < len(after_fault) - 1 - after_fault[::-1].index(
        "wait_healthy"
    )
    assert "reinitialised" in [e.name for e in report.events]


async def test_healing_sets_aside_a_dead_timeline_when_copies_still_cannot_start(
    run: Run,
) -> None:
    run.fake.dead_timeline = True
    report = DrillReport.model_validate(await (await run.start(Scenario.stop_patroni)).result())
    assert report.healed, report.healing
    after_fault = run.fake.calls[run.fake.calls.index("fault") :]
    repo = run.spec.hosts_with(Role.backup_repo)[0].name
    assert after_fault[-7:] == [
        "wait_healthy",
        f"set_aside on {repo}",
        "reinit",
        "wait_healthy",
        "release_stale_ready@db2",
        "check_archiving",
        "history",
    ]
    assert any("set aside timeline 11" in line for line in report.healing)
    assert "timelines set aside" in [e.name for e in report.events]


async def test_healing_leaves_a_diverged_member_alone_when_the_spec_says_so(
    env: WorkflowEnvironment, spec: ClusterSpec
) -> None:
    spec = without_approval(spec)
    spec = spec.model_copy(
        update={"drill": spec.drill.model_copy(update={"reinit_diverged": False})}
    )
    fake = FakeDrillCluster()
    fake.heals_after_reinit = True
    async with drills_on(env, spec, fake) as r:
        failure = await r.failure(Scenario.stop_patroni)
    assert failure.type == "DrillFailed" and "did not heal" in failure.message
    assert "reinit" not in fake.calls and not fake.saved[-1].healed


async def test_a_cluster_that_is_not_whole_is_refused_before_any_fault(run: Run) -> None:
    run.fake.lagging = True
    failure = await run.failure(Scenario.kill_postgres)
    assert failure.type == "DrillRefused" and "db2 lags" in failure.message
    assert "fault" not in run.fake.calls and "probe" not in run.fake.calls


async def test_lost_acknowledged_writes_fail_the_drill_red(run: Run) -> None:
    run.fake.lose = [3, 4]
    failure = await run.failure(Scenario.kill_postgres)
    assert failure.type == "DrillFailed" and "2 lost" in failure.message
    report = run.fake.saved[-1]
    assert report.verdict is not None and report.verdict.lost == [3, 4]


async def test_a_drill_cancelled_during_the_fault_still_heals_and_reports(run: Run) -> None:
    run.fake.fault_hangs = True
    handle = await run.start(Scenario.kill_postgres)
    await asyncio.wait_for(run.fake.fault_started.wait(), 20)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    run.fake.fault_hangs = False
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    # Healing ran after the cancellation, the archiving checks last.
    assert run.fake.calls[-3:] == ["wait_healthy", "release_stale_ready@db1", "check_archiving"]
    report = run.fake.saved[-1]
    assert report.healed and "cancelled" in report.reason


async def test_host_loss_without_power_control_is_refused(run: Run) -> None:
    assert run.spec.drill.power.value == "none"
    failure = await run.failure(Scenario.host_loss)
    assert failure.type == "DrillRefused" and "drill.power" in failure.message
    assert run.fake.calls == []  # refused before even looking at the cluster


@pytest_asyncio.fixture
async def gated(env: WorkflowEnvironment, spec: ClusterSpec) -> AsyncIterator[Run]:
    """A cluster whose drills wait for `pgha approve` (the default outside the lab)."""
    assert spec.drill.require_approval
    async with drills_on(env, spec, FakeDrillCluster()) as r:
        yield r


async def waiting_for_approval(handle: object) -> None:
    for _ in range(100):
        p = await handle.query("progress", result_type=Progress)  # type: ignore[attr-defined]
        if p.phase == "approval":
            return
        await asyncio.sleep(0.1)
    pytest.fail("the drill never waited for an approval")


async def test_an_approved_drill_runs_its_fault(gated: Run) -> None:
    handle = await gated.start(Scenario.switchover)
    await waiting_for_approval(handle)
    assert "fault" not in gated.fake.calls and "probe" not in gated.fake.calls
    said = await handle.execute_update("approve", Approval(approve=True, by="dba"), result_type=str)
    assert said.startswith("approved")
    report = DrillReport.model_validate(await handle.result())
    assert report.passed and report.events[0].name == "approved"


async def test_a_rejected_drill_does_nothing(gated: Run) -> None:
    handle = await gated.start(Scenario.kill_postgres)
    await waiting_for_approval(handle)
    await handle.execute_update("approve", Approval(approve=False, by="dba", note="not today"))
    with pytest.raises(WorkflowFailureError) as err:
        await handle.result()
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "DrillRefused"
    assert "rejected by dba: not today" in cause.message
    assert "fault" not in gated.fake.calls and "probe" not in gated.fake.calls


async def test_pgha_approve_releases_a_waiting_drill(
    gated: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_file = tmp_path / f"{gated.spec.cluster}.yaml"
    spec_file.write_text(spec_to_yaml(gated.spec))
    monkeypatch.setenv("PGHA_TEMPORAL_ADDRESS", gated.env.client.service_client.config.target_host)
    runner = CliRunner()
    # Nothing waits yet: a clear refusal, not a traceback.
    nothing = await asyncio.to_thread(runner.invoke, cli.app, ["approve", "-c", str(spec_file)])
    assert nothing.exit_code == 1 and "no drill is waiting for an approval" in nothing.output
    handle = await gated.start(Scenario.switchover)
    await waiting_for_approval(handle)
    done = await asyncio.to_thread(runner.invoke, cli.app, ["approve", "-c", str(spec_file)])
    assert done.exit_code == 0, done.output
    assert "approved: the fault follows" in done.output
    assert DrillReport.model_validate(await handle.result()).passed
