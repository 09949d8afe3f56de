"""The pure helpers of bench/drills.py: scenario parsing, Patroni's view of a whole cluster,
the DCS timer commands, and how a failed drill workflow is read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError

from bench.drills import (
    PATRONICTL,
    edit_command,
    failure_of,
    parse_scenarios,
    running_timers,
    whole_problem,
)
from pgha.drill_models import DrillReport, Scenario
from tests.unit.drill_samples import failed_report

T0 = datetime(2026, 11, 27, tzinfo=UTC)


def test_parse_scenarios_keeps_order_and_drops_repeats() -> None:
    assert parse_scenarios("host-loss, switchover,host-loss") == [
        Scenario.host_loss, Scenario.switchover,
    ]  # fmt: skip


def test_parse_scenarios_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown scenario.*host_loss.*choose from switchover"):
        parse_scenarios("host_loss")
    with pytest.raises(ValueError, match="none given"):
        parse_scenarios(" , ")


def test_whole_problem_one_leader_others_streaming_is_whole() -> None:
    members = [
        {"Member": "db1", "Role": "Leader", "State": "running"},
        {"Member": "db2", "Role": "Replica", "State": "streaming"},
        {"Member": "db3", "Role": "Replica", "State": "running"},  # Patroni 3.0.2's word
    ]
    assert whole_problem(members) == ""


def test_whole_problem_names_what_is_missing() -> None:
    assert whole_problem([{"Member": "db2", "Role": "Replica", "State": "running"}]) == (
        "0 running leaders"
    )
    members = [
        {"Member": "db1", "Role": "Leader", "State": "running"},
        {"Member": "db2", "Role": "Replica", "State": "start failed"},
    ]
    assert whole_problem(members) == "db2 start failed"


def test_edit_command_sets_each_timer_and_removes_absent_ones() -> None:
    cmd = edit_command({"ttl": 8, "loop_wait": 2, "retry_timeout": None})
    assert cmd == "edit-config --force --quiet -s ttl=8 -s loop_wait=2 -s retry_timeout=null"
    assert PATRONICTL == "patronictl -c /etc/patroni/config.yml"


def test_running_timers_fill_patronis_defaults() -> None:
    assert running_timers({"ttl": 8, "loop_wait": None, "retry_timeout": None}) == {
        "ttl": 8, "loop_wait": 10, "retry_timeout": 10,
    }  # fmt: skip


def failed(cause: BaseException) -> WorkflowFailureError:
    return WorkflowFailureError(cause=cause)


def test_failure_of_drill_failed_carries_the_report() -> None:
    report = failed_report("lost writes")
    details = report.model_dump(mode="json")
    err = failed(ApplicationError("drill switchover of lab failed: lost writes", details,
                                  type="DrillFailed", non_retryable=True))  # fmt: skip
    kind, message, got = failure_of(err)
    assert kind == "DrillFailed" and "lost writes" in message
    assert DrillReport.model_validate(got) == report


def test_failure_of_refusal_and_cancellation() -> None:
    refused = failed(ApplicationError("drill refused: cluster lab is not whole",
                                      type="DrillRefused"))  # fmt: skip
    assert failure_of(refused)[:2] == ("DrillRefused", "drill refused: cluster lab is not whole")
    assert failure_of(failed(CancelledError("cancelled")))[0] == "Cancelled"
