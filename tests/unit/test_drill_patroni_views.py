"""Reading Patroni during a drill: its timeline history, and which members healing must
reinitialise."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pgha.activities.drill import diverged, parse_history
from pgha.status_models import Member, PatroniStatus


def test_the_newest_history_entry_names_the_timeline_it_started() -> None:
    text = json.dumps([
        [1, 50331808, "no recovery target specified", "2026-11-26T14:00:01.5+00:00"],
        [2, 83886240, "no recovery target specified", "2026-11-26T14:05:07.25+00:00", "db2"],
    ])  # fmt: skip
    switch = parse_history(text)
    assert switch is not None
    assert (switch.timeline, switch.new_leader) == (3, "db2")
    assert switch.at == datetime(2026, 11, 26, 14, 5, 7, 250000, tzinfo=UTC)


def test_an_old_entry_without_timestamp_or_leader_still_parses() -> None:
    switch = parse_history(json.dumps([[1, 100, "no recovery target specified"]]))
    assert switch is not None and switch.at is None and switch.new_leader == ""


def test_a_cluster_that_never_switched_has_no_history() -> None:
    assert parse_history("[]") is None and parse_history("") is None


def _member(name: str, role: str, state: str, lag: int | None) -> Member:
    return Member(name=name, host=name, role=role, state=state, lag_bytes=lag)


def test_only_members_that_do_not_follow_the_leader_are_reinitialised() -> None:
    view = PatroniStatus(source="db2", members=[
        _member("db1", "replica", "streaming", 0),
        _member("db2", "leader", "running", None),
        _member("db3", "replica", "start failed", None),
        _member("db4", "replica", "running", None),  # running but not replicating
    ])  # fmt: skip
    assert diverged(view, "db2") == ["db3", "db4"]
