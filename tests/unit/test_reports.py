"""The report store keeps reports whole, private and in order; the summaries say what a DBA
needs first; the activities store and read back through it; `pgha report` exits 1 on a
failed one."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from rich.console import Console
from temporalio.testing import ActivityEnvironment
from typer.testing import CliRunner

from pgha import reports
from pgha.activities import reports as report_activities
from pgha.backup_models import (
    BackupRecord,
    BackupResult,
    BackupSets,
    BackupsOverview,
    BackupType,
    CheckOutcome,
    Sentinel,
    TableRows,
    VerifyReport,
)
from pgha.report_cli import report as report_command
from pgha.report_text import (
    backup_summary,
    headline,
    human_bytes,
    human_seconds,
    verification_concern,
    verify_summary,
)
from pgha.report_views import backups_report
from pgha.reports import ReportKind, ReportNotFound, ReportUnreadable

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PGHA_STATE_DIR", str(tmp_path))
    return tmp_path


def backup_record(label: str = "20261126-030000F", **kw: object) -> BackupRecord:
    data: dict[str, object] = {
        "label": label,
        "type": BackupType.full,
        "started": T0,
        "stopped": T0 + timedelta(minutes=5),
        "size_bytes": 3 * 2**30 // 2,
        "repo_size_bytes": 300 * 2**20,
        "wal_start": "000000010000000000000003",
        "wal_stop": "000000010000000000000005",
        "lsn_start": "0/3000028",
        "lsn_stop": "0/5000100",
    }
    data.update(kw)
    return BackupRecord.model_validate(data)


def verify_report(passed: bool = True, **kw: object) -> VerifyReport:
    started = T0 + timedelta(hours=5, minutes=12)
    checks = [
        CheckOutcome(name="pgbackrest verify", passed=True, detail="no gaps", seconds=12.34),
        CheckOutcome(
            name="sentinel", passed=passed, detail="found" if passed else "absent", seconds=0.05
        ),
        CheckOutcome(name="pg_amcheck", passed=True, detail="clean", seconds=65.0),
    ]
    data: dict[str, object] = {
        "cluster": "prod",
        "stanza": "prod",
        "workflow_id": "pgha-op:prod",
        "started_at": started,
        "finished_at": started + timedelta(minutes=3, seconds=10),
        "passed": passed,
        "reason": "" if passed else "sentinel: absent, expected present",
        "target_host": "backup1",
        "scratch_path": "/var/lib/pgha-verify/prod",
        "backup": backup_record(),
        "sentinel": Sentinel(
            value="pgha-verify-7f3a",
            written_at=started,
            xid=1234,
            lsn="0/6000060",
            wal_file="000000010000000000000006",
            row_counts=[TableRows(database="app", schema_name="public", table="t", rows=10)],
        ),
        "checks": checks,
        "timings": {"total": 190.0, "restore": 65.5, "sentinel": 0.4},
        "sizes": {"restored_data": 2 * 2**30, "wal_replayed": 48 * 2**20},
    }
    data.update(kw)
    return VerifyReport.model_validate(data)


def backup_result() -> BackupResult:
    older = backup_record(
        "20261125-030000F",
        started=T0 - timedelta(days=1),
        stopped=T0 - timedelta(days=1) + timedelta(minutes=4),
    )
    return BackupResult(
        cluster="prod",
        stanza="prod",
        backup=backup_record(),
        expired=["20261119-030000F"],
        check_s=1.3,
        primary="db1",
        sets=[older, backup_record()],
    )


def save_verification(
    report: VerifyReport, created_at: datetime | None = None
) -> reports.StoredReport:
    return reports.save_report(
        ReportKind.verify_restore,
        report.cluster,
        report.workflow_id,
        report,
        verify_summary(report),
        passed=report.passed,
        created_at=created_at or report.finished_at,
    )


# ---------------------------------------------------------------- store


def test_save_and_load_round_trip_keeps_report_and_summary() -> None:
    original = verify_report()
    stored = save_verification(original)
    loaded = reports.load_report(stored.id)
    assert loaded == stored
    assert VerifyReport.model_validate(loaded.data) == original
    assert loaded.passed is True and loaded.headline.startswith("PASSED")
    assert reports.read_summary(loaded) == verify_summary(original)
    assert Path(stored.path).parent == reports.reports_dir() / "prod" / "verify-restore"
    assert stored.id.startswith("20261126T081510Z-")
    assert "path" not in json.loads(Path(stored.path).read_text())


def test_save_same_report_again_rewrites_same_files() -> None:
    first = save_verification(verify_report())
    again = save_verification(verify_report())
    assert again.id == first.id
    assert len(list(Path(first.path).parent.iterdir())) == 2  # one .json, one .txt, no temp


def test_files_are_0600_and_directories_0700(state_dir: Path) -> None:
    os.umask(0o022)
    stored = save_verification(verify_report())
    json_path = Path(stored.path)
    for path in (json_path, json_path.with_suffix(".txt")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in (state_dir / "reports", state_dir / "reports" / "prod", json_path.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


def test_list_reports_newest_first_even_within_one_second() -> None:
    r = verify_report()
    times = [
        T0 + timedelta(hours=2),
        T0,
        T0 + timedelta(hours=2, microseconds=500),
        T0 + timedelta(hours=1),
    ]
    ids = {t: save_verification(r, created_at=t).id for t in times}
    reports.save_report(
        ReportKind.backup,
        "prod",
        "pgha-op:prod",
        backup_result(),
        "b",
        created_at=T0 + timedelta(hours=3),
    )
    listed = reports.list_reports("prod", ReportKind.verify_restore)
    assert [x.id for x in listed] == [ids[t] for t in sorted(times, reverse=True)]
    latest = reports.latest_report("prod", ReportKind.verify_restore)
    assert latest is not None and latest.id == listed[0].id
    every = reports.list_reports("prod", limit=2)
    assert [x.kind for x in every] == [ReportKind.backup, ReportKind.verify_restore]


def test_list_reports_limit_cuts_inside_one_second_by_exact_time() -> None:
    """Ids sort by time only to the second; the limit must still keep the newest."""
    r = verify_report()
    times = [T0 + timedelta(microseconds=us) for us in (5, 1, 4, 2, 6, 3)]
    ids = {t: save_verification(r, created_at=t).id for t in times}
    newest = [ids[t] for t in sorted(times, reverse=True)]
    for limit in range(1, len(times) + 1):
        got = reports.list_reports("prod", ReportKind.verify_restore, limit=limit)
        assert [x.id for x in got] == newest[:limit], limit


def test_latest_report_of_cluster_without_reports_is_none() -> None:
    save_verification(verify_report())
    assert reports.latest_report("other", ReportKind.verify_restore) is None
    assert reports.latest_report("prod", ReportKind.backup) is None


def test_load_report_missing_id_names_id_and_store(state_dir: Path) -> None:
    with pytest.raises(ReportNotFound) as caught:
        reports.load_report("20261126T031500Z-0badc0de")
    message = str(caught.value)
    assert "20261126T031500Z-0badc0de" in message
    assert str(state_dir / "reports") in message


def test_load_report_rejects_path_like_id() -> None:
    with pytest.raises(ReportNotFound, match="not a report id"):
        reports.load_report("../secrets")


def test_damaged_newest_report_is_an_error_naming_the_file() -> None:
    stored = save_verification(verify_report())
    Path(stored.path).write_text("{not json")
    with pytest.raises(ReportUnreadable, match=stored.path):
        reports.list_reports("prod")


def test_save_report_refuses_cluster_name_with_path() -> None:
    with pytest.raises(reports.ReportError, match="not a cluster name"):
        reports.save_report(ReportKind.backup, "../x", "w", backup_result(), "s")


# ---------------------------------------------------------------- summaries


def test_verify_summary_passed_states_the_key_facts() -> None:
    text = verify_summary(verify_report())
    first = text.splitlines()[0]
    assert first.startswith("PASSED")
    for fact in ("prod", "20261126-030000F", "5 h 7 min old", "backup1"):
        assert fact in first, fact
    assert "reason:" not in text
    assert "sentinel: 'pgha-verify-7f3a'" in text
    assert "expected present: ✓ as expected" in text
    assert "✓ pgbackrest verify" in text and "12.3 s" in text and "1 min 05 s" in text
    assert "timings: sentinel 0.4 s, restore 1 min 06 s, total 3 min 10 s" in text
    assert "sizes: restored data 2.0 GiB, wal replayed 48.0 MiB" in text
    assert "1.5 GiB of database, 300.0 MiB in the repository" in text


def test_verify_summary_failed_leads_with_reason_and_marks_check() -> None:
    text = verify_summary(verify_report(passed=False))
    lines = text.splitlines()
    assert lines[0] == (
        "FAILED restore verification of prod: set 20261126-030000F (full, 5 h 7 min old) on backup1"
    )
    assert lines[1] == "reason: sentinel: absent, expected present"
    assert (
        headline(verify_report(passed=False)) == f"{lines[0]}: sentinel: absent, expected present"
    )
    assert "✗ sentinel" in text
    assert "expected present: ✗ NOT as expected" in text


def test_verify_summary_without_set_or_sentinel_says_so() -> None:
    text = verify_summary(verify_report(passed=False, backup=None, sentinel=None, checks=[]))
    assert "no backup set chosen" in text and "sentinel: none written" in text
    assert "checks: none ran" in text


def test_backup_summary_states_set_sizes_wal_and_expiry() -> None:
    result = backup_result()
    text = backup_summary(result)
    assert text.splitlines()[0] == headline(result)
    for fact in (
        "full backup 20261126-030000F of prod: 1.5 GiB (300.0 MiB in the repository) in 5 min 00 s",
        "primary db1",
        "WAL 000000010000000000000003 - 000000010000000000000005 (timeline 1)",
        "expired under the retention: 20261119-030000F",
        "repository now: 2 set(s) (2 full)",
        "archive check before the backup: 1.3 s",
    ):
        assert fact in text, fact


def test_human_units() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1536, 5 * 2**40)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 TiB",
    ]
    assert [human_seconds(s) for s in (0.42, 59.96, 305, 7380)] == [
        "0.4 s",
        "60.0 s",
        "5 min 05 s",
        "2 h 03 min",
    ]


def test_verification_concern_flags_failed_stale_and_missing() -> None:
    ok = verify_report()
    now = ok.finished_at + timedelta(hours=1)
    assert verification_concern(ok, 36, now) == ""
    assert "older than backup.verify.max_age_hours (36 h)" in verification_concern(
        ok, 36, ok.finished_at + timedelta(hours=37)
    )
    assert "FAILED" in verification_concern(verify_report(passed=False), 36, now)
    assert verification_concern(None, 36, now) == "no restore verification on record"


def test_backups_report_shows_sets_and_flags_stale_verification() -> None:
    last = verify_report()
    overview = BackupsOverview(
        cluster="prod",
        sets=BackupSets(stanza="prod", status="ok", sets=[backup_record()]),
        last_verification=last,
        verification_max_age_hours=1,
    )
    console = Console(record=True, width=200)
    console.print(backups_report(overview, last.finished_at + timedelta(hours=2)))
    text = console.export_text()
    assert "20261126-030000F" in text and "1.5 GiB" in text and "300.0 MiB" in text
    assert "PASSED 2 h 0 min ago" in text
    assert "older than backup.verify.max_age_hours (1 h)" in text


# ---------------------------------------------------------------- activities


async def test_activities_save_and_read_back_latest_verification() -> None:
    env = ActivityEnvironment()
    assert await env.run(report_activities.latest_verification, "prod") is None
    older = verify_report()
    newer = verify_report(passed=False, finished_at=older.finished_at + timedelta(days=1))
    for r in (newer, older):
        assert await env.run(report_activities.save_verification, r)
    assert await env.run(report_activities.latest_verification, "prod") == newer
    backup_id = await env.run(report_activities.save_backup, backup_result())
    stored = reports.load_report(backup_id)
    assert stored.kind is ReportKind.backup and stored.passed is None
    assert stored.headline == headline(backup_result())


# ---------------------------------------------------------------- pgha report


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(report_command)
    app.command("noop")(lambda: None)  # two commands: typer then expects the command name
    return app


def test_report_command_failed_exits_1_and_shows_reason() -> None:
    save_verification(verify_report(passed=False))
    result = CliRunner().invoke(_cli(), ["report", "--cluster", "prod"])
    assert result.exit_code == 1, result.output
    assert "FAILED restore verification of prod" in result.output
    assert "reason: sentinel: absent, expected present" in result.output


def test_report_command_passed_json_and_list() -> None:
    stored = save_verification(verify_report())
    shown = CliRunner().invoke(_cli(), ["report", stored.id, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["id"] == stored.id
    listed = CliRunner().invoke(_cli(), ["report", "-c", "prod", "--list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["id"] for r in json.loads(listed.output)] == [stored.id]


def test_report_command_without_reports_exits_1_naming_store(state_dir: Path) -> None:
    result = CliRunner().invoke(_cli(), ["report", "-c", "prod", "--kind", "backup"])
    assert result.exit_code == 1
    assert "no backup report of cluster prod" in result.output
