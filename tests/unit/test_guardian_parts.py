"""The guardian's pure parts: pg_stat_archiver parsed, the alert's JSON body, the CLI's
refusal of bad event data or a wrong old leader, the spec's defaults, and the
post-failover's line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml
from typer.testing import CliRunner

from pgha.activities.guardian import event_body, parse_archiver
from pgha.cli import app
from pgha.event_kinds import EventKind, Reaction
from pgha.event_models import ClusterEvent, PostFailoverReport
from pgha.spec import GuardianSettings
from tests.specs import REFERENCE, reference_spec


def test_archiver_row_parsed_with_epoch_times() -> None:
    a = parse_archiver("42\t3\t1796300000.5\t1796300100.25\t000000020000000000000042\n")
    assert a is not None and a.failing and a.failed_count == 3
    assert a.last_archived_at == datetime.fromtimestamp(1796300000.5, UTC)
    ok = parse_archiver("42\t0\t1796300000\t0\t\n")
    assert ok is not None and not ok.failing and ok.last_failed_at is None
    assert parse_archiver("") is None


def test_an_alert_posts_the_event_and_its_cluster() -> None:
    event = ClusterEvent(kind=EventKind.leader_changed, at=datetime(2026, 12, 3, tzinfo=UTC),
                         subject="db2", detail="db2 leads; db1 led",
                         data={"old_leader": "db1", "new_leader": "db2"})  # fmt: skip
    body = event_body(reference_spec("prod"), event)
    assert body["cluster"] == "prod" and body["kind"] == "leader_changed"
    assert body["at"] == "2026-12-03T00:00:00Z" and body["data"]["old_leader"] == "db1"


def test_a_failover_reacts_by_default_and_the_guardian_is_off_by_default() -> None:
    g = GuardianSettings()
    assert not g.enabled and g.webhook is None
    assert g.reactions[EventKind.leader_changed] == [Reaction.post_failover, Reaction.alert]


def test_event_send_refuses_data_that_is_not_a_json_object() -> None:
    result = CliRunner().invoke(app, ["event", "send", "--cluster", "lab", "member_down",
                                      "--data", "[1, 2]"])  # fmt: skip
    assert result.exit_code == 2 and "not a JSON object" in result.output


def test_post_failover_by_hand_names_the_database_hosts_when_the_old_leader_is_not_one(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "prod.yaml"
    spec.write_text(yaml.safe_dump(REFERENCE))
    result = CliRunner().invoke(app, ["run", "post-failover", "--cluster", str(spec),
                                      "--old-leader", "proxy1"])  # fmt: skip
    assert result.exit_code == 2
    words = [w for w in result.output.split() if w != "│"]  # rich's box wraps the line
    assert "'proxy1' is not a database host of cluster prod (db1, db2, db3)" in " ".join(words)


def test_a_post_failover_line_says_what_the_archiver_release_did() -> None:
    at = datetime(2026, 12, 3, tzinfo=UTC)
    report = PostFailoverReport(
        cluster="prod", workflow_id="pgha-op:prod", started_at=at, finished_at=at,
        old_leader="db2", new_leader="db1", old_primary="rejoined",
        archiver="marked archived 00000006000000000000001C (...)", backup_label="L",
        backup_timeline=13, verified=True,
    )  # fmt: skip
    assert report.summary_line() == (
        "db2 -> db1: old primary rejoined; archiver: marked archived 00000006000000000000001C "
        "(...); backup L on timeline 13; restore verified"
    )
    quiet = report.model_copy(update={"archiver": "no segment of a timeline older than 13 "
                                                  "waits for the archiver"})  # fmt: skip
    assert "archiver" not in quiet.summary_line()
