"""The failover floor of Patroni's timers and the fast-failover preset
(pgha.checks.failover_floor)."""

from __future__ import annotations

import pytest

from pgha.checks.failover_floor import (
    FAST_FAILOVER,
    best_case_s,
    effective_timers,
    floor_s,
    obeys_rule,
    parse_patroni_version,
    timer_bound_s,
    watchdog_slack_s,
    with_timers,
)
from pgha.drill_models import Scenario
from pgha.render.patroni import WATCHDOG_SAFETY_MARGIN
from pgha.spec import PatroniSettings

DEFAULT = PatroniSettings()  # ttl 30, loop_wait 10, retry_timeout 10
TTL_BOUND = [Scenario.host_loss, Scenario.partition_primary, Scenario.freeze_primary]


@pytest.mark.parametrize("scenario", TTL_BOUND)
def test_floor_ttl_bound_scenario_is_ttl_and_best_case_ttl_minus_loop_wait(
    scenario: Scenario,
) -> None:
    assert floor_s(scenario, DEFAULT) == 30.0
    assert best_case_s(scenario, DEFAULT) == 20.0
    assert timer_bound_s(scenario, DEFAULT) == 30.0
    assert floor_s(scenario, FAST_FAILOVER) == 7.0
    assert best_case_s(scenario, FAST_FAILOVER) == 6.0


@pytest.mark.parametrize(
    "scenario", [Scenario.switchover, Scenario.stop_patroni, Scenario.kill_postgres]
)
def test_floor_scenario_without_timer_floor_is_none(scenario: Scenario) -> None:
    assert floor_s(scenario, DEFAULT) is None
    assert best_case_s(scenario, DEFAULT) is None


def test_timer_bound_kill_postgres_is_loop_wait() -> None:
    # Patroni sees the dead postmaster at its next cycle, at most loop_wait later.
    assert timer_bound_s(Scenario.kill_postgres, DEFAULT) == 10.0
    assert timer_bound_s(Scenario.kill_postgres, FAST_FAILOVER) == 1.0
    assert timer_bound_s(Scenario.switchover, DEFAULT) == 0.0


@pytest.mark.parametrize("scenario", [Scenario.etcd_member_loss, Scenario.proxy_loss])
def test_floor_scenario_outside_patroni_timers_is_zero(scenario: Scenario) -> None:
    assert floor_s(scenario, DEFAULT) == 0.0
    assert best_case_s(scenario, DEFAULT) == 0.0


def test_every_scenario_has_a_floor_decision() -> None:
    for scenario in Scenario:
        floor_s(scenario, DEFAULT)  # never raises, whatever the scenario


def test_fast_failover_preset_obeys_patronis_rule_exactly() -> None:
    p = FAST_FAILOVER
    assert (p.ttl, p.loop_wait, p.retry_timeout) == (7, 1, 3)
    assert obeys_rule(p)
    assert p.loop_wait + 2 * p.retry_timeout == p.ttl  # no slack: 1 + 2*3 = 7
    assert floor_s(Scenario.host_loss, p) is not None
    assert floor_s(Scenario.host_loss, p) < 10  # type: ignore[operator]


def test_obeys_rule_violation_is_caught() -> None:
    assert obeys_rule(DEFAULT)
    assert not obeys_rule(PatroniSettings(ttl=8, loop_wait=3, retry_timeout=3))


def test_watchdog_slack_fast_preset_with_pghas_margin_is_one_second() -> None:
    # pgha renders safety_margin 5: the watchdog fires 2 s after the last keepalive.
    assert watchdog_slack_s(FAST_FAILOVER, WATCHDOG_SAFETY_MARGIN) == 1
    assert watchdog_slack_s(FAST_FAILOVER, -1) == 2  # ttl // 2 = 3
    assert watchdog_slack_s(DEFAULT, WATCHDOG_SAFETY_MARGIN) == 15
    assert watchdog_slack_s(PatroniSettings(ttl=6, loop_wait=2, retry_timeout=2), 5) < 0


def test_with_timers_keeps_the_clusters_other_patroni_settings() -> None:
    base = PatroniSettings(synchronous_mode=True, maximum_lag_on_failover=0)
    fast = with_timers(base, FAST_FAILOVER)
    assert (fast.ttl, fast.loop_wait, fast.retry_timeout) == (7, 1, 3)
    assert fast.synchronous_mode and fast.maximum_lag_on_failover == 0


def test_parse_patroni_version() -> None:
    assert parse_patroni_version("patroni 3.0.2\n") == (3, 0, 2)
    assert parse_patroni_version("patroni 4.1") == (4, 1, 0)
    with pytest.raises(ValueError, match="no Patroni version"):
        parse_patroni_version("command not found")


def test_effective_timers_before_3_2_are_taken_as_they_are() -> None:
    assert effective_timers(FAST_FAILOVER, (3, 0, 2)) == FAST_FAILOVER


def test_effective_timers_from_3_2_raise_ttl_to_20() -> None:
    eff = effective_timers(FAST_FAILOVER, (3, 2, 0))
    assert (eff.ttl, eff.loop_wait, eff.retry_timeout) == (20, 1, 3)
    assert floor_s(Scenario.host_loss, eff) == 20.0


def test_effective_timers_from_3_2_shrink_loop_wait_then_retry_timeout() -> None:
    # Patroni's own adjustments: loop_wait first, retry_timeout only when loop_wait is 1.
    eff = effective_timers(PatroniSettings(ttl=20, loop_wait=10, retry_timeout=7), (4, 0, 0))
    assert (eff.ttl, eff.loop_wait, eff.retry_timeout) == (20, 6, 7)
    eff = effective_timers(PatroniSettings(ttl=30, loop_wait=10, retry_timeout=30), (3, 3, 1))
    assert (eff.ttl, eff.loop_wait, eff.retry_timeout) == (30, 1, 14)
    assert effective_timers(DEFAULT, (4, 1, 5)) == DEFAULT
