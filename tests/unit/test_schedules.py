"""The schedules a spec asks for, how they compare, and how they are shown. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy, ScheduleState

from pgha.backup_models import ScheduleKind
from pgha.schedule_models import (
    CATCHUP_WINDOW,
    MEMO_CRON,
    RecentRun,
    ScheduleRow,
    SyncResult,
    TriggerResult,
    desired_schedules,
    differences,
    parse_schedule_id,
    run_spec,
    schedule_id,
)
from pgha.schedule_views import schedules_table, sync_report, trigger_report
from pgha.search_attributes import CLUSTER_ATTR, OPERATION_ATTR
from pgha.spec import ClusterSpec, parse_spec
from pgha.workflows.scheduled import busy_retry_interval
from tests.specs import reference_data


def spec_with(**backup: Any) -> ClusterSpec:
    data = reference_data("prod")
    data["backup"] = backup
    return parse_spec(data, "test")


def render(renderable: Any) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_desired_schedules_default_spec_full_diff_and_verify() -> None:
    desired = desired_schedules(spec_with(), "pgha")
    assert [(d.id, d.kind, d.cron) for d in desired] == [
        ("pgha:prod:full", ScheduleKind.full, "0 1 * * 0"),
        ("pgha:prod:diff", ScheduleKind.diff, "0 1 * * 1-6"),
        ("pgha:prod:verify-restore", ScheduleKind.verify_restore, "0 4 * * *"),
    ]
    assert all(d.task_queue == "pgha" and d.run_input.kind == d.kind for d in desired)


def test_desired_schedules_null_cron_has_no_schedule() -> None:
    spec = spec_with(schedule={"incr": "0 * * * *", "diff": None, "verify_restore": None})
    assert [d.kind for d in desired_schedules(spec, "q")] == [ScheduleKind.full, ScheduleKind.incr]


def test_desired_schedules_backup_disabled_is_empty() -> None:
    assert desired_schedules(spec_with(enabled=False), "q") == []


def test_desired_schedule_run_spec_carries_no_crons_so_one_cron_change_touches_one() -> None:
    before = {d.kind: d for d in desired_schedules(spec_with(), "q")}
    after = {d.kind: d for d in desired_schedules(spec_with(schedule={"full": "0 3 * * 0"}), "q")}
    assert differences(
        after[ScheduleKind.full].snapshot(), before[ScheduleKind.full].snapshot()
    ) == ["cron"]
    for kind in (ScheduleKind.diff, ScheduleKind.verify_restore):
        assert differences(after[kind].snapshot(), before[kind].snapshot()) == []
    spec = before[ScheduleKind.full].run_input.spec
    assert spec.backup.schedule.full is None and spec.backup.schedule.verify_restore is None
    assert spec.hosts == spec_with().hosts and spec.backup.enabled


def test_desired_schedule_other_spec_change_updates_run_input() -> None:
    data = reference_data("prod")
    data["hosts"][0]["address"] = "10.0.0.41"
    [changed, *_] = desired_schedules(parse_spec(data, "test"), "q")
    [current, *_] = desired_schedules(spec_with(), "q")
    assert differences(changed.snapshot(), current.snapshot()) == ["run_input"]
    assert differences(current.snapshot(), current.snapshot()) == []


def test_desired_schedule_builds_skip_policy_with_catchup_and_note() -> None:
    [full, *_] = desired_schedules(spec_with(), "pgha")
    schedule = full.schedule()
    action = schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id, action.task_queue) == (
        "ScheduledRun", "pgha-schedule:prod:full", "pgha")  # fmt: skip
    assert action.args == [full.run_input]
    assert action.memo == {MEMO_CRON: "0 1 * * 0"}
    assert action.typed_search_attributes.get(CLUSTER_ATTR) == "prod"
    assert action.typed_search_attributes.get(OPERATION_ATTR) == "scheduled-full"
    assert action.static_summary == "scheduled full backup of cluster prod"
    assert list(schedule.spec.cron_expressions) == ["0 1 * * 0"]
    assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert schedule.policy.catchup_window == CATCHUP_WINDOW == timedelta(hours=6)
    assert schedule.policy.pause_on_failure is False
    assert not schedule.state.paused
    assert "`pgha schedule sync --cluster prod`" in (schedule.state.note or "")


def test_desired_schedule_given_state_is_kept() -> None:
    [full, *_] = desired_schedules(spec_with(), "pgha")
    state = ScheduleState(note="disk swap", paused=True)
    assert full.schedule(state).state == state


def test_parse_schedule_id_round_trips_and_ignores_others() -> None:
    for kind in ScheduleKind:
        assert parse_schedule_id(schedule_id("prod-2", kind)) == ("prod-2", kind)
    for other in ("pgha:prod", "pgha:prod:weekly", "nightly", "pgha::full", "x:prod:full"):
        assert parse_schedule_id(other) is None


def test_busy_retry_interval_tenth_of_wait_between_1s_and_1min() -> None:
    assert busy_retry_interval(3600) == timedelta(minutes=1)
    assert busy_retry_interval(300) == timedelta(seconds=30)
    assert busy_retry_interval(2) == timedelta(seconds=1)
    assert busy_retry_interval(0) == timedelta(seconds=1)


def test_sync_report_dry_run_says_would_and_names_changed_fields() -> None:
    result = SyncResult(cluster="prod", dry_run=True, created=["pgha:prod:full"],
                        updated=["pgha:prod:diff"], changes={"pgha:prod:diff": ["cron"]},
                        deleted=["pgha:prod:incr"])  # fmt: skip
    text = render(sync_report(result, "http://ui/namespaces/default/schedules"))
    assert "would create" in text and "would update (cron)" in text and "would delete" in text
    assert "dry run: 3 change(s) would be made; nothing was changed" in text
    assert "http://ui/namespaces/default/schedules" in text


def test_sync_report_in_sync_says_nothing_changed() -> None:
    text = render(sync_report(SyncResult(cluster="prod", unchanged=["pgha:prod:full"])))
    assert "already in sync: nothing changed" in text


def test_schedules_table_shows_pause_next_and_last_run() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    rows = [
        ScheduleRow(id="pgha:prod:full", cluster="prod", kind=ScheduleKind.full,
                    cron="0 1 * * 0", paused=True, note="disk swap",
                    next_runs=[datetime(2026, 11, 29, 1, 0, tzinfo=UTC)]),
        ScheduleRow(id="pgha:prod:diff", cluster="prod", kind=ScheduleKind.diff,
                    cron="0 1 * * 1-6", paused=False, note="",
                    next_runs=[datetime(2026, 11, 27, 1, 0, tzinfo=UTC)],
                    recent=[RecentRun(scheduled_at=now - timedelta(hours=11),
                                      started_at=now - timedelta(hours=11),
                                      workflow_id="pgha-schedule:prod:diff-2026-11-26T01:00:00Z",
                                      run_id="r", status="failed")],
                    skipped_overlap=2),
    ]  # fmt: skip
    text = render(schedules_table(rows, now))
    assert "paused: disk swap" in text and "none (paused)" in text
    assert "2026-11-27 01:00 (in 13h 0m)" in text
    assert "2026-11-26 01:00 (11h 0m ago) failed" in text
    assert "pgha-schedule:prod:diff-2026-11-26T01:00:00Z" in text
    assert "2 skipped (still running)" in text
    assert "pgha schedule sync" in render(schedules_table([], now))


def test_trigger_report_names_run_or_why_none() -> None:
    started = TriggerResult(schedule_id="pgha:prod:full", workflow_id="pgha-schedule:prod:full-t")
    assert "`pgha watch pgha-schedule:prod:full-t`" in render(trigger_report(started, "prod"))
    skipped = TriggerResult(schedule_id="pgha:prod:full", skipped=True, running=["run-1"])
    assert "skipped, its run run-1 is still running" in render(trigger_report(skipped, "prod"))
    unseen = TriggerResult(schedule_id="pgha:prod:full")
    assert "pgha schedule list --cluster prod" in render(trigger_report(unseen, "prod"))


def test_run_spec_is_idempotent() -> None:
    spec = spec_with()
    assert run_spec(run_spec(spec)) == run_spec(spec)
