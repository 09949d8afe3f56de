"""Report activities: keep backup, restore-verification, drill, upgrade and reconfigure
reports in the worker's report store, and read the last verification back. Thin: the
layout is pgha.reports', the wording the *_text modules', a drill's picture
pgha.render.drill_timeline's. They touch only the local disk, never a host.

Reports land on the machine of the worker that runs the save; with workers on several
machines, give them one shared state directory or accept that each keeps its own.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel, ValidationError
from temporalio import activity

from pgha.activities.converge import permanent
from pgha.backup_models import BackupResult, VerifyReport
from pgha.drill_models import DrillReport
from pgha.drill_text import drill_headline, drill_summary
from pgha.reconfigure_models import ReconfigureReport
from pgha.reconfigure_text import reconfigure_headline, reconfigure_summary
from pgha.report_text import backup_headline, backup_summary, verify_headline, verify_summary
from pgha.reports import ReportError, ReportKind, latest_report, save_report
from pgha.rolling_models import UpgradeReport
from pgha.rolling_text import upgrade_headline, upgrade_summary


async def _save(
    kind: ReportKind, cluster: str, workflow_id: str, report: BaseModel, summary: str,
    headline: str, passed: bool | None, finished: datetime, picture: bytes | None = None,
) -> str:  # fmt: skip
    """Save in a thread (file I/O); idempotent for one run and finish time. Store errors
    are permanent: a retry would fail the same way."""
    try:
        stored = await asyncio.to_thread(
            save_report, kind, cluster, workflow_id, report, summary, headline=headline,
            passed=passed, run_id=activity.info().workflow_run_id or "", created_at=finished,
            picture=picture,
        )  # fmt: skip
    except ReportError as err:
        raise permanent(str(err), type(err).__name__) from None
    return stored.id


@activity.defn(name="reports.save_verification")
async def save_verification(report: VerifyReport) -> str:
    """Store a restore verification with its human summary. Idempotent: a retry rewrites
    the same files (the id comes from the workflow, its run and ``finished_at``).

    :returns: the report id, for `pgha report ID`.
    """
    return await _save(
        ReportKind.verify_restore, report.cluster, report.workflow_id, report,
        verify_summary(report), verify_headline(report), report.passed, report.finished_at,
    )  # fmt: skip


@activity.defn(name="reports.save_backup")
async def save_backup(result: BackupResult) -> str:
    """Store a finished backup with its human summary. Idempotent like save_verification
    (keyed on the calling workflow, its run and the set's stop time).

    :returns: the report id.
    """
    return await _save(
        ReportKind.backup, result.cluster, activity.info().workflow_id or "", result,
        backup_summary(result), backup_headline(result), None, result.backup.stopped,
    )  # fmt: skip


@activity.defn(name="reports.latest_verification")
async def latest_verification(cluster: str) -> VerifyReport | None:
    """The cluster's newest restore verification in this worker's store, or None.

    A damaged newest report fails (non-retryable ReportUnreadable, naming the file) rather
    than being skipped: skipping could pass off an older success for a newer failure.
    """
    try:
        stored = await asyncio.to_thread(latest_report, cluster, ReportKind.verify_restore)
    except ReportError as err:
        raise permanent(str(err), type(err).__name__) from None
    if stored is None:
        return None
    try:
        return VerifyReport.model_validate(stored.data)
    except ValidationError as err:
        raise permanent(
            f"{stored.path}: the newest verification report of {cluster} does not fit this "
            f"pgha's VerifyReport ({str(err).splitlines()[0]}); move it aside",
            "ReportUnreadable",
        ) from None


def _timeline(report: DrillReport) -> tuple[bytes | None, str]:
    """The drill's timeline picture, or None and a line saying why it is missing.

    Any error is caught, not only the expected ones: the picture is a view of data the JSON
    keeps, and a plotting bug must never cost the report itself.
    """
    try:
        # Imported here: matplotlib costs every `pgha` command a third of a second at
        # start-up (the CLI imports the worker's activities), and only this activity draws.
        # Inside the try: a worker installed without matplotlib still keeps its reports.
        from pgha.render.drill_timeline import timeline_png

        return timeline_png(report), ""
    except Exception as err:
        activity.logger.warning("drill %s: timeline picture not drawn", report.workflow_id,
                                exc_info=True)  # fmt: skip
        return None, f"timeline picture: not drawn ({type(err).__name__}: {err})"


@activity.defn(name="reports.save_drill")
async def save_drill(report: DrillReport) -> str:
    """Store a drill's report with its human summary and, when the report has a probe
    series, its timeline picture (``<id>.png``). Idempotent like the others.

    :returns: the report id.
    """
    # In a thread: drawing takes about a second of CPU, the event loop has heartbeats to run.
    picture, note = await asyncio.to_thread(_timeline, report)
    summary = drill_summary(report) + (note + "\n" if note else "")
    return await _save(
        ReportKind.drill, report.cluster, report.workflow_id, report, summary,
        drill_headline(report), report.passed, report.finished_at, picture,
    )  # fmt: skip


@activity.defn(name="reports.save_reconfigure")
async def save_reconfigure(report: ReconfigureReport) -> str:
    """Store a reconfigure's report (a dry run's plan too) with its human summary.
    Idempotent like the others.

    :returns: the report id.
    """
    return await _save(
        ReportKind.reconfigure, report.cluster, report.workflow_id, report,
        reconfigure_summary(report), reconfigure_headline(report),
        None if report.dry_run else report.passed, report.finished_at,
    )  # fmt: skip


@activity.defn(name="reports.save_upgrade")
async def save_upgrade(report: UpgradeReport) -> str:
    """Store an upgrade's report with its human summary. Idempotent like the others.

    :returns: the report id.
    """
    return await _save(
        ReportKind.upgrade, report.cluster, report.workflow_id, report,
        upgrade_summary(report), upgrade_headline(report), report.passed, report.finished_at,
    )  # fmt: skip
