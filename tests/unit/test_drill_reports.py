"""A drill's report in the store: its timeline picture saved beside it (a drawing failure
never costs the report), `pgha report` pointing at it and writing it out, and the summary's
Patroni and reinitialisation lines."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest
import typer
from temporalio.testing import ActivityEnvironment
from typer.testing import CliRunner

from pgha import reports
from pgha.activities import reports as report_activities
from pgha.drill_models import DrillReport, PatroniTimes
from pgha.drill_text import drill_summary, patroni_times_line
from pgha.render import drill_timeline
from pgha.report_cli import report as report_command
from pgha.reports import ReportKind
from tests.unit.drill_samples import T0, drill_report
from tests.unit.test_drill_timeline import PNG_SIGNATURE
from tests.unit.test_reports import save_verification, verify_report


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PGHA_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


async def save(report: DrillReport) -> reports.StoredReport:
    report_id = await ActivityEnvironment().run(report_activities.save_drill, report)
    return reports.load_report(report_id)


# ---------------------------------------------------------------- store


async def test_save_drill_writes_the_picture_beside_the_report() -> None:
    stored = await save(drill_report())
    assert stored.kind is ReportKind.drill and stored.passed is True
    png = stored.picture_path
    assert png == Path(stored.path).with_suffix(".png")
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert stat.S_IMODE(png.stat().st_mode) == 0o600
    assert not list(png.parent.glob(".*.tmp"))  # the temporary files were renamed
    assert "timeline picture" not in stored.summary_path.read_text()


async def test_save_drill_again_rewrites_the_same_picture() -> None:
    first = await save(drill_report())
    picture = first.picture_path.read_bytes()
    second = await save(drill_report())
    assert second.id == first.id and second.picture_path.read_bytes() == picture


async def test_save_drill_without_series_has_no_picture() -> None:
    stored = await save(drill_report(series=None))
    assert not stored.picture_path.exists()
    assert "timeline picture" not in stored.summary_path.read_text()


async def test_save_drill_drawing_failure_saves_the_report_and_notes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(report: DrillReport) -> bytes:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(drill_timeline, "timeline_png", broken)
    stored = await save(drill_report())
    assert not stored.picture_path.exists()
    assert DrillReport.model_validate(stored.data) == drill_report()
    summary = stored.summary_path.read_text()
    assert "timeline picture: not drawn (RuntimeError: no fonts)" in summary


# ---------------------------------------------------------------- summary


def test_drill_summary_shows_patroni_times_and_reinitialised_members() -> None:
    text = drill_summary(drill_report(reinitialised=["db1", "db3"]))
    assert (
        "patroni after the fault: detected after 14.5 s, new leader running after 18.1 s, "
        "history switch at 17.8 s (no recovery target specified)"
    ) in text
    assert "reinitialised from the leader (their data had diverged): db1, db3" in text


def test_drill_summary_without_patroni_times_or_reinit_has_no_such_lines() -> None:
    text = drill_summary(drill_report(patroni_times=None))
    assert "patroni after the fault" not in text and "reinitialised" not in text
    assert "patroni: ttl 30, loop_wait 10" in text  # the settings line stays


def test_patroni_times_line_leaves_out_what_patroni_did_not_show() -> None:
    assert (
        patroni_times_line(PatroniTimes(fault_at=T0, detected_s=0.4))
        == "patroni after the fault: detected after 0.4 s"
    )
    assert (
        patroni_times_line(PatroniTimes(fault_at=T0, history_switch_s=3.25))
        == "patroni after the fault: history switch at 3.2 s"
    )
    assert patroni_times_line(PatroniTimes(fault_at=T0)) == (
        "patroni after the fault: no reaction seen"
    )


# ---------------------------------------------------------------- pgha report
# Synchronous tests: the command runs its own event loop.


def saved(report: DrillReport) -> reports.StoredReport:
    return asyncio.run(save(report))


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(report_command)
    app.command("noop")(lambda: None)  # two commands: typer then expects the command name
    return app


def test_report_command_names_the_picture_of_a_drill() -> None:
    stored = saved(drill_report())
    result = CliRunner().invoke(_cli(), ["report", stored.id])
    assert result.exit_code == 0, result.output
    assert "PASSED drill partition-primary of lab" in result.output
    assert f"timeline: {stored.picture_path}" in result.output


def test_report_command_png_copies_the_picture(tmp_path: Path) -> None:
    stored = saved(drill_report())
    out = tmp_path / "drill.png"
    result = CliRunner().invoke(_cli(), ["report", stored.id, "--png", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == stored.picture_path.read_bytes()
    assert f"timeline of report {stored.id} written to {out}" in result.output


def test_report_command_png_of_cluster_takes_latest_drill(tmp_path: Path) -> None:
    stored = saved(drill_report())
    save_verification(verify_report())  # the default kind otherwise
    out = tmp_path / "drill.png"
    result = CliRunner().invoke(_cli(), ["report", "-c", "lab", "--png", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == stored.id  # stdout stays JSON
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_report_command_png_draws_a_missing_picture(tmp_path: Path) -> None:
    stored = saved(drill_report())
    stored.picture_path.unlink()
    stored.summary_path.unlink()  # the summary is rebuilt from the data as well
    out = tmp_path / "drill.png"
    result = CliRunner().invoke(_cli(), ["report", stored.id, "--png", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert "PASSED drill partition-primary of lab" in result.output
    assert "timeline: " not in result.output  # no stored picture to name


def test_report_command_png_of_drill_without_series_names_the_report(
    tmp_path: Path,
) -> None:
    stored = saved(drill_report(series=None))
    result = CliRunner().invoke(_cli(), ["report", stored.id, "--png", str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert f"drill report {stored.id} has no timeline picture" in result.output
    assert not (tmp_path / "x.png").exists()


def test_report_command_png_of_verification_names_the_report(tmp_path: Path) -> None:
    stored = save_verification(verify_report())
    result = CliRunner().invoke(_cli(), ["report", stored.id, "--png", str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert f"report {stored.id} is a verify-restore report" in result.output


def test_report_command_png_unwritable_path_says_where(tmp_path: Path) -> None:
    stored = saved(drill_report())
    out = tmp_path / "missing-dir" / "x.png"
    result = CliRunner().invoke(_cli(), ["report", stored.id, "--png", str(out)])
    assert result.exit_code == 1
    assert f"cannot write the timeline picture of report {stored.id} to {out}" in " ".join(
        result.output.split()
    )


def test_drill_summary_lists_healing_steps_in_order_when_there_were_several() -> None:
    steps = ["SIGCONT to 13 postgres processes", "the cluster is not whole after 240 s: db1",
             "reinitialised db1 from db2"]  # fmt: skip
    text = drill_summary(drill_report().model_copy(update={"healing": steps, "healed": True}))
    assert "healed: yes, in 3 steps:\n  - SIGCONT to 13 postgres processes\n  - the cluster" in text
    one = drill_summary(drill_report().model_copy(update={"healing": steps[:1], "healed": False}))
    assert "healed: NO (SIGCONT to 13 postgres processes)\n" in one
