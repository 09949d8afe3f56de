"""The drill bench's figures (bench.drill_stats): medians, worst, ratios to the floor of
Patroni's timers, the issue's targets, and failed runs counted."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

import pytest

from bench.drill_stats import (
    DrillRun,
    Preset,
    Spread,
    describe,
    schedule,
    summarise,
    table,
    target,
)
from pgha.checks.failover_floor import FAST_FAILOVER
from pgha.drill_models import DrillReport, PatroniTimes, Scenario, Verdict
from pgha.spec import PatroniSettings
from tests.unit.drill_samples import failed_report

DEFAULT = PatroniSettings()
T0 = datetime(2026, 11, 27, tzinfo=UTC)


def run(scenario: Scenario, rnd: int, write: float | None, *, passed: bool = True,
        lost: int = 0, span: float = 0.0, promoted: float | None = None,
        reason: str = "") -> DrillRun:  # fmt: skip
    return DrillRun(
        scenario=scenario, round=rnd, passed=passed, reason=reason, write_gap_s=write,
        read_gap_s=None if write is None else write / 2, lost=None if write is None else lost,
        lost_span_s=None if write is None else span, promoted_s=promoted,
    )  # fmt: skip


def test_summarise_medians_and_worst_per_scenario_in_run_order() -> None:
    runs = [
        run(Scenario.switchover, 1, 1.2, promoted=2.0),
        run(Scenario.host_loss, 1, 33.0, promoted=31.0),
        run(Scenario.switchover, 2, 1.8, promoted=3.0),
        run(Scenario.host_loss, 2, 36.0),
        run(Scenario.switchover, 3, 3.0, promoted=2.5),
        run(Scenario.host_loss, 3, 31.0, promoted=30.0),
    ]
    sw, hl = summarise(runs, DEFAULT, Preset.default)
    assert sw.scenario is Scenario.switchover and hl.scenario is Scenario.host_loss
    assert sw.runs == 3 and sw.passed == 3
    assert sw.write_gap == Spread(median=1.8, worst=3.0, best=1.2)
    assert sw.read_gap == Spread(median=0.9, worst=1.5, best=0.6)
    assert sw.promoted_median_s == 2.5
    assert hl.promoted_median_s == 30.5  # the run without Patroni's times is left out


def test_summarise_ratio_is_median_write_gap_over_the_ttl_floor() -> None:
    runs = [run(Scenario.host_loss, i, gap) for i, gap in enumerate([33.0, 36.0, 31.0])]
    (hl,) = summarise(runs, DEFAULT, Preset.default)
    assert hl.floor_s == 30.0 and hl.best_case_s == 20.0
    assert hl.ratio == pytest.approx(1.1)
    assert hl.target is not None and hl.target.limit_s == 33.0
    assert hl.target_met is True  # 33.0 <= 1.1 x 30


def test_summarise_without_floor_has_no_ratio() -> None:
    (sw,) = summarise([run(Scenario.switchover, 1, 1.0)], DEFAULT, Preset.default)
    (el,) = summarise([run(Scenario.etcd_member_loss, 1, 0.0)], DEFAULT, Preset.default)
    assert sw.floor_s is None and sw.ratio is None
    assert el.floor_s == 0.0 and el.ratio is None  # never divides by a zero floor


def test_summarise_failed_runs_are_counted_and_their_figures_kept() -> None:
    runs = [
        run(Scenario.freeze_primary, 1, 30.0),
        run(Scenario.freeze_primary, 2, 34.0, passed=False, lost=61, span=1.25,
            reason="writes went wrong: 61 lost, 0 ghost, 0 duplicated"),
        run(Scenario.freeze_primary, 3, None, passed=False, reason="the cluster did not heal"),
    ]  # fmt: skip
    (fp,) = summarise(runs, DEFAULT, Preset.default)
    assert fp.runs == 3 and fp.passed == 1
    assert fp.write_gap == Spread(median=32.0, worst=34.0, best=30.0)  # no verdict, no figure
    assert fp.lost == Spread(median=30.5, worst=61.0, best=0.0)
    assert fp.lost_span_worst_s == 1.25
    assert fp.failures == (
        "round 2: writes went wrong: 61 lost, 0 ghost, 0 duplicated",
        "round 3: the cluster did not heal",
    )


def test_summarise_no_figures_at_all_leaves_target_undecided() -> None:
    (sw,) = summarise([run(Scenario.switchover, 1, None, passed=False)], DEFAULT,
                      Preset.default)  # fmt: skip
    assert sw.write_gap is None and sw.target_met is None


def test_target_switchover_is_a_median_under_2_s() -> None:
    t = target(Scenario.switchover, Preset.default, None)
    assert t is not None
    assert t.met(Spread(median=1.9, worst=5.0, best=1.0)) is True
    assert t.met(Spread(median=2.0, worst=2.0, best=2.0)) is False  # strictly under


def test_target_kill_postgres_judges_the_worst_run() -> None:
    t = target(Scenario.kill_postgres, Preset.default, None)
    assert t is not None
    assert t.met(Spread(median=3.0, worst=6.0, best=1.0)) is True  # no worse than 6 s
    assert t.met(Spread(median=3.0, worst=6.1, best=1.0)) is False


def test_target_host_loss_fast_preset_is_under_10_s() -> None:
    runs = [run(Scenario.host_loss, i, gap) for i, gap in enumerate([9.0, 9.5, 12.0])]
    (hl,) = summarise(runs, FAST_FAILOVER, Preset.fast)
    assert hl.floor_s == 7.0 and hl.ratio == 1.36  # 9.5 / 7, to 2 places
    assert hl.target is not None and hl.target.text == "median < 10 s"
    assert hl.target_met is True


def test_target_host_loss_over_1_1x_floor_is_not_met() -> None:
    (hl,) = summarise([run(Scenario.host_loss, 1, 36.5)], DEFAULT, Preset.default)
    assert hl.target_met is False


def test_target_other_scenarios_have_none() -> None:
    for s in (Scenario.stop_patroni, Scenario.partition_primary, Scenario.proxy_loss):
        assert target(s, Preset.default, 30.0) is None


def test_drill_run_of_report_takes_verdict_and_patroni_times() -> None:
    report = DrillReport(
        cluster="lab", scenario=Scenario.host_loss, workflow_id="pgha-op:lab",
        started_at=T0, finished_at=T0, passed=False, reason="writes went wrong",
        old_leader="db1", new_leader="db2",
        verdict=Verdict(acknowledged=900, lost=[7, 8], lost_span_s=0.05, write_gap_s=35.2,
                        read_gap_s=3.1, max_commit_s=0.4),
        patroni_times=PatroniTimes(fault_at=T0, detected_s=31.0, promoted_s=32.5),
    )  # fmt: skip
    r = DrillRun.of_report(report, 2, 81.234)
    assert (r.scenario, r.round, r.passed, r.wall_s) == (Scenario.host_loss, 2, False, 81.23)
    assert (r.write_gap_s, r.read_gap_s, r.lost, r.lost_span_s) == (35.2, 3.1, 2, 0.05)
    assert (r.detected_s, r.promoted_s) == (31.0, 32.5)
    assert (r.old_leader, r.new_leader) == ("db1", "db2")


def test_drill_run_of_report_without_verdict_has_no_figures() -> None:
    report = failed_report("not healed")
    r = DrillRun.of_report(report, 1, 10.0)
    assert r.write_gap_s is None and r.lost is None and r.promoted_s is None


def test_table_shows_figures_floor_ratio_target_and_failures() -> None:
    runs = [
        run(Scenario.host_loss, 1, 33.0, promoted=31.0),
        run(Scenario.host_loss, 2, 35.0, promoted=32.0, passed=False, lost=3, span=0.1,
            reason="writes went wrong"),
        run(Scenario.switchover, 1, 1.5),
    ]  # fmt: skip
    text = table(summarise(runs, DEFAULT, Preset.default))
    header, hl, sw, *rest = text.splitlines()
    assert header.split()[:3] == ["scenario", "runs", "pass"]
    assert hl.split()[:3] == ["host-loss", "2", "1"]
    assert "34.0 / 35.0" in hl and "1.5 / 3" in hl  # write gap; lost rows median / worst
    assert " 30 " in hl and "1.13" in hl  # floor and ratio 34 / 30
    assert "median <= 1.1x floor (33 s): NOT met" in hl
    assert "- " in sw and sw.endswith("median < 2 s: met")
    assert rest == ["", "failed runs:", "  host-loss round 2: writes went wrong"]


def test_schedule_round_robin_rotates_the_start_each_round() -> None:
    a, b, c = Scenario.switchover, Scenario.kill_postgres, Scenario.host_loss
    assert schedule([a, b, c], 3) == [
        (1, a), (1, b), (1, c),
        (2, b), (2, c), (2, a),
        (3, c), (3, a), (3, b),
    ]  # fmt: skip
    assert schedule([a], 2) == [(1, a), (2, a)]


def test_describe_names_figures_or_the_failure() -> None:
    ok = run(Scenario.switchover, 1, 1.5, promoted=1.2)
    assert describe(ok).startswith("passed; writes down 1.5 s, reads down 0.8 s, 0 acknowledged")
    assert "Patroni promoted at 1.2 s" in describe(ok)
    bad = run(Scenario.switchover, 1, None, passed=False, reason="not healed")
    assert describe(bad) == "FAILED (not healed) (0 s)"


def test_runs_and_summaries_serialise_to_json() -> None:
    runs = [run(Scenario.host_loss, 1, 33.0, promoted=31.0), run(Scenario.switchover, 1, None)]
    data = json.loads(json.dumps({
        "runs": [asdict(r) for r in runs],
        "summary": [asdict(s) for s in summarise(runs, DEFAULT, Preset.default)],
    }))  # fmt: skip
    assert data["runs"][0]["scenario"] == "host-loss"
    assert data["summary"][0]["target"]["limit_s"] == 33.0
    assert data["summary"][1]["write_gap"] is None
