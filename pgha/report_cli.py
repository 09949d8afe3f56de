"""The `pgha report` and `pgha backups` commands (registered on the main app by pgha/cli.py):
parse, read the report store or run the BackupsView workflow, print. No cluster logic here.

`pgha report` reads this machine's report store directly (no Temporal): run it where the
worker that ran the operations runs, or share the state directory.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from pgha.backup_models import BackupResult, BackupsOverview, BackupsOverviewInput, VerifyReport
from pgha.cli_support import console, err_console, run_async
from pgha.drill_models import DrillReport
from pgha.drill_text import drill_summary
from pgha.errors import OperationFailed, PghaError
from pgha.models import NAME_PATTERN
from pgha.operations import BACKUPS, start_operation
from pgha.report_text import backup_summary, verify_summary
from pgha.report_views import backups_report, report_list, report_view
from pgha.reports import (
    DEFAULT_LIMIT,
    ReportError,
    ReportKind,
    ReportNotFound,
    StoredReport,
    latest_report,
    list_reports,
    load_report,
    read_summary,
    reports_dir,
)
from pgha.settings import temporal_settings
from pgha.spec import load_spec
from pgha.temporal import connect
from pgha.worker import in_process_worker_if_needed


class BackupsDisabled(PghaError):
    """The cluster's spec turns backups off, so there is nothing to list."""


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _cluster_name(value: str) -> str:
    """A cluster name as given, or the name inside a spec given by path. A bare name is not
    looked up in clusters/: reports outlive the spec files of retired clusters."""
    if re.fullmatch(NAME_PATTERN, value):
        return value
    return load_spec(value).cluster


def _summary(stored: StoredReport) -> str:
    """The stored summary; rebuilt from the data when the .txt file went missing."""
    text = read_summary(stored)
    if text is not None:
        return text
    if stored.kind is ReportKind.verify_restore:
        return verify_summary(VerifyReport.model_validate(stored.data))
    if stored.kind is ReportKind.drill:
        return drill_summary(DrillReport.model_validate(stored.data))
    return backup_summary(BackupResult.model_validate(stored.data))


def _picture(stored: StoredReport) -> bytes:
    """The report's timeline picture: the stored file, or drawn now from the report's series
    when the file is missing (the save could not draw it, or the file was removed).

    :raises ReportNotFound: the report is not a drill's, or has no series to draw from.
    """
    if stored.picture_path.is_file():
        return stored.picture_path.read_bytes()
    if stored.kind is not ReportKind.drill:
        raise ReportNotFound(
            f"report {stored.id} is a {stored.kind.value} report: only drill reports have a "
            "timeline picture (`pgha report --list --cluster NAME --kind drill` lists them)"
        )
    # Imported here: matplotlib takes a while to load and only this path needs it.
    from pgha.render.drill_timeline import timeline_png

    png = timeline_png(DrillReport.model_validate(stored.data))
    if png is None:
        raise ReportNotFound(
            f"drill report {stored.id} has no timeline picture and no probe series to draw "
            "one from (the probe logged nothing, or the drill ran before pgha kept series)"
        )
    return png


def _write_picture(stored: StoredReport, path: Path) -> None:
    png = _picture(stored)
    try:
        path.write_bytes(png)
    except OSError as err:
        raise ReportError(
            f"cannot write the timeline picture of report {stored.id} to {path}: "
            f"{err.strerror or err}"
        ) from None


def _pick(
    report_id: str | None,
    cluster: str | None,
    kind: ReportKind | None,
    default_kind: ReportKind = ReportKind.verify_restore,
) -> StoredReport:
    if report_id:
        stored = load_report(report_id)
        if cluster and stored.cluster != _cluster_name(cluster):
            raise ReportError(f"report {report_id} is of cluster {stored.cluster}, not {cluster}")
        return stored
    if not cluster:
        raise typer.BadParameter("give a report id or --cluster")
    name, wanted = _cluster_name(cluster), kind or default_kind
    stored_or_none = latest_report(name, wanted)
    if stored_or_none is None:
        raise ReportNotFound(
            f"no {wanted.value} report of cluster {name} in {reports_dir() / name}: reports are "
            "kept on the machine of the worker that ran the operation; run "
            f"`pgha run {wanted.value} --cluster {name}` to make one"
        )
    return stored_or_none


def report(
    report_id: Annotated[
        str | None, typer.Argument(help="Report id (default: the cluster's latest).")
    ] = None,
    cluster: Annotated[
        str | None, typer.Option("--cluster", "-c", help="Cluster name (or a path to its spec).")
    ] = None,
    kind: Annotated[
        ReportKind | None,
        typer.Option(
            "--kind",
            help="Kind of report (default: verify-restore; --list: all; --png: drill).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    list_: Annotated[
        bool, typer.Option("--list", help="List the cluster's recent reports.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many --list shows.")] = (
        DEFAULT_LIMIT
    ),
    png: Annotated[
        Path | None,
        typer.Option(
            "--png",
            dir_okay=False,
            help="Also write the drill's timeline picture to this file (with --cluster and "
            "no id: the latest drill).",
        ),
    ] = None,
) -> None:
    """Show a stored report (the cluster's latest restore verification by default); exit 1
    when it failed. A drill report names its timeline picture (PNG). Reads this machine's
    report store."""

    async def go() -> None:
        if list_:
            if report_id or not cluster or png:
                raise typer.BadParameter("--list takes --cluster, and no report id or --png")
            name = _cluster_name(cluster)
            reports = list_reports(name, kind, limit)
            if as_json:
                print(json.dumps([r.model_dump(mode="json", exclude={"data"}) for r in reports],
                                 indent=2))  # fmt: skip
            elif reports:
                console.print(report_list(reports, f"reports of {name} ({reports_dir() / name})"))
            else:
                console.print(f"no reports of {name} in {reports_dir() / name}")
            return
        stored = _pick(report_id, cluster, kind,
                       ReportKind.drill if png else ReportKind.verify_restore)  # fmt: skip
        if png is not None:
            _write_picture(stored, png)
        if as_json:
            print(Path(stored.path).read_text(encoding="utf-8"), end="")
        else:
            console.print(report_view(stored, _summary(stored)))
            if stored.picture_path.is_file():
                console.print(f"timeline: {stored.picture_path}", highlight=False,
                              soft_wrap=True)  # fmt: skip
        if png is not None:  # on stderr with --json: stdout is the JSON
            (err_console if as_json else console).print(
                f"timeline of report {stored.id} written to {png}", highlight=False,
                soft_wrap=True,
            )  # fmt: skip
        if stored.passed is False:
            raise typer.Exit(1)

    run_async(go)


def _failure_message(err: WorkflowFailureError) -> str:
    cause: BaseException | None = err.cause
    while cause is not None and not isinstance(cause, ApplicationError) and cause.__cause__:
        cause = cause.__cause__
    return cause.message if isinstance(cause, ApplicationError) else str(cause or err)


def backups(
    cluster: Annotated[
        str,
        typer.Option(
            "--cluster", "-c", help="Cluster name (reads clusters/NAME.yaml) or a path to a spec."
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """List the backup sets and the last restore verification (flagged when it failed or is
    too old). Changes nothing; exit 3 when the repository could not be read."""
    settings = temporal_settings()

    async def go() -> None:
        spec = load_spec(cluster)
        if not spec.backup.enabled:
            raise BackupsDisabled(f"cluster {spec.cluster} has backups off (backup.enabled)")
        client = await connect(settings)
        handle = await start_operation(
            client, BACKUPS, spec.cluster, BackupsOverviewInput(spec=spec),
            task_queue=settings.task_queue,
        )  # fmt: skip
        async with in_process_worker_if_needed(client, settings.task_queue):
            try:
                result = BackupsOverview.model_validate(await handle.result())
            except WorkflowFailureError as err:
                raise OperationFailed(
                    f"reading the backups of {spec.cluster} failed: {_failure_message(err)}"
                ) from None
        if as_json:
            print(result.model_dump_json(indent=2))
        else:
            console.print(backups_report(result, datetime.now(UTC)))
        if result.unreadable:
            raise typer.Exit(3)

    run_async(go)
