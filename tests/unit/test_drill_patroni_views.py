"""Reading Patroni during a drill: its timeline history, and which members healing must
reinitialise."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pgha.activities.drill import (
    STUCK_AFTER_S,
    StartFailures,
    diverged,
    healthy,
    not_streaming,
    parse_history,
    parse_replication,
    stuck_leader,
    successor,
)
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


def _member(name: str, role: str, state: str, lag: int | None, tl: int | None = 6) -> Member:
    return Member(name=name, host=name, role=role, state=state, lag_bytes=lag, timeline=tl)


def test_only_members_the_leader_does_not_stream_to_are_reinitialised() -> None:
    view = PatroniStatus(source="db2", members=[
        _member("db1", "replica", "streaming", 0),
        _member("db2", "leader", "running", None),
        _member("db3", "replica", "start failed", None),
        _member("db4", "replica", "running", 0),  # "no lag", yet the leader sends it nothing
    ])  # fmt: skip
    replication = {"db1": "streaming", "db4": "catchup", "pg_basebackup": "backup"}
    assert diverged(view, "db2", replication) == ["db3", "db4"]


def test_the_leaders_replication_rows_by_member() -> None:
    text = json.dumps({"role": "master", "replication": [
        {"application_name": "db1", "state": "streaming", "sync_state": "async"},
        {"application_name": "db3", "state": "startup"},
    ]})  # fmt: skip
    assert parse_replication(text) == {"db1": "streaming", "db3": "startup"}
    assert parse_replication(json.dumps({"role": "master"})) == {}


def test_a_replica_showing_no_lag_but_not_streaming_keeps_the_cluster_unhealed() -> None:
    # Seen in the lab: db2 replayed the old timeline's WAL from the archive past the fork,
    # Patroni showed it running with no lag, and promoted it at the next failover.
    view = PatroniStatus(source="db1", members=[
        _member("db1", "leader", "running", None, tl=6),
        _member("db2", "replica", "running", 0, tl=5),
        _member("db3", "replica", "running", 0, tl=6),
    ])  # fmt: skip
    assert healthy(view, 3, 0) == ["db2 is on timeline 5, db1 on 6"]
    assert not_streaming(view, {"db3": "streaming"}) == ["db2"]


def test_a_leader_key_held_by_a_member_that_does_not_run_is_stuck() -> None:
    # Seen in the lab: db2, cut off, demoted; back in touch it rewrote the leader key and
    # could not start (its data had diverged), while db3 led the newest timeline.
    view = PatroniStatus(source="db1", members=[
        _member("db1", "replica", "running", 0, tl=5),
        _member("db2", "leader", "start failed", None, tl=None),
        _member("db3", "replica", "running", 15 << 20, tl=6),
    ])  # fmt: skip
    assert stuck_leader([view, view.model_copy(update={"source": "db3"})]) == "db2"
    assert successor(view, "db2") == "db3"  # the newest timeline, not the least lag


def test_a_running_leader_or_disagreeing_views_are_not_stuck() -> None:
    running = PatroniStatus(source="db1", members=[
        _member("db1", "leader", "running", None), _member("db2", "replica", "running", 0),
    ])  # fmt: skip
    other = PatroniStatus(source="db2", members=[
        _member("db1", "replica", "running", 0), _member("db2", "leader", "stopped", None),
    ])  # fmt: skip
    assert stuck_leader([running]) is None
    assert stuck_leader([running, other]) is None


def test_a_member_that_keeps_failing_to_start_is_stuck_after_a_while() -> None:
    failures = StartFailures()
    failed = PatroniStatus(source="db2", members=[
        _member("db1", "replica", "start failed", None),
        _member("db2", "leader", "running", None),
    ])  # fmt: skip
    starting = PatroniStatus(source="db2", members=[
        _member("db1", "replica", "starting", None),
        _member("db2", "leader", "running", None),
    ])  # fmt: skip
    assert failures.stuck([failed], 100.0) == []
    assert failures.stuck([starting], 120.0) == []  # a retry is not a recovery
    assert failures.stuck([failed], 100.0 + STUCK_AFTER_S) == ["db1"]


def test_a_member_that_runs_again_is_not_stuck() -> None:
    failures = StartFailures()
    failures.stuck([PatroniStatus(source="db2", members=[
        _member("db1", "replica", "start failed", None)])], 0.0)  # fmt: skip
    failures.stuck([PatroniStatus(source="db2", members=[
        _member("db1", "replica", "streaming", 0)])], 10.0)  # fmt: skip
    assert failures.stuck([], STUCK_AFTER_S + 1) == []


def test_a_member_being_reinitialised_is_not_stuck() -> None:
    failures = StartFailures()
    failures.stuck([PatroniStatus(source="db2", members=[
        _member("db1", "replica", "start failed", None)])], 0.0)  # fmt: skip
    failures.stuck([PatroniStatus(source="db2", members=[
        _member("db1", "replica", "creating replica", None)])], 5.0)  # fmt: skip
    assert failures.stuck([], STUCK_AFTER_S + 1) == []
