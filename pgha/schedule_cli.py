"""`pgha schedule ...`: a typer sub-app over pgha.schedules; parses, calls, prints. No logic."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import TypeAdapter
from temporalio.client import Client

from pgha.backup_models import ScheduleKind
from pgha.cli_support import console, run_async
from pgha.models import NAME_PATTERN
from pgha.schedule_models import ScheduleRow
from pgha.schedule_views import schedules_table, sync_report, toggled_report, trigger_report
from pgha.schedules import (
    list_schedules,
    pause_schedules,
    sync_schedules,
    trigger_schedule,
    unpause_schedules,
)
from pgha.settings import TemporalSettings, temporal_settings
from pgha.spec import load_spec
from pgha.temporal import connect

schedule_app = typer.Typer(
    help="Backup and restore-verification schedules (Temporal Schedules) from the spec.",
    no_args_is_help=True,
)

ClusterOpt = Annotated[
    str,
    typer.Option(
        "--cluster", "-c", help="Cluster name (reads clusters/NAME.yaml) or a path to a spec."
    ),
]
KindsArg = Annotated[
    list[ScheduleKind] | None,
    typer.Argument(help="Schedule kinds; every schedule of the cluster when none is given."),
]
NoteOpt = Annotated[
    str | None, typer.Option("--note", help="Shown on the schedule (Web UI, `list`).")
]


def _cluster_name(value: str) -> str:
    """The cluster a ``--cluster`` value names, without reading its spec when it is a plain
    name: schedules of a cluster whose spec file is gone can still be listed and paused."""
    if "/" in value or value.endswith((".yaml", ".yml")):
        return load_spec(value).cluster
    if not re.fullmatch(NAME_PATTERN, value):
        raise typer.BadParameter(
            f"{value!r} is not a cluster name or a spec path", param_hint="--cluster"
        )
    return value


def _schedules_url(settings: TemporalSettings) -> str:
    return f"{settings.web_ui}/namespaces/{settings.namespace}/schedules" if settings.web_ui else ""


async def _warn_without_worker(client: Client, settings: TemporalSettings) -> None:
    # Imported here: the worker module pulls in every activity (asyncssh and friends).
    from pgha.worker import worker_polling

    if not await worker_polling(client, settings.task_queue):
        console.print(
            f"[yellow]no `pgha worker` polls task queue {settings.task_queue}: scheduled runs "
            "wait until one does[/]"
        )


@schedule_app.command("sync")
def sync(
    cluster: ClusterOpt,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
) -> None:
    """Create, update and delete the cluster's schedules to match its spec (idempotent)."""
    settings = temporal_settings()

    async def go() -> None:
        spec = load_spec(cluster)
        client = await connect(settings)
        result = await sync_schedules(client, spec, settings.task_queue, dry_run=dry_run)
        console.print(sync_report(result, _schedules_url(settings)))
        if result.created or result.updated or result.unchanged:
            await _warn_without_worker(client, settings)

    run_async(go)


@schedule_app.command("list")
def list_(
    cluster: Annotated[
        str | None, typer.Option("--cluster", "-c", help="Only this cluster's schedules.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every pgha schedule (or one cluster's): cron, paused or not, next and last runs."""
    settings = temporal_settings()

    async def go() -> None:
        name = _cluster_name(cluster) if cluster else None
        rows = await list_schedules(await connect(settings), name)
        if as_json:
            print(TypeAdapter(list[ScheduleRow]).dump_json(rows, indent=2).decode())
        else:
            console.print(schedules_table(rows, datetime.now(UTC)))

    run_async(go)


@schedule_app.command("pause")
def pause(cluster: ClusterOpt, kinds: KindsArg = None, note: NoteOpt = None) -> None:
    """Pause schedules: no run starts until unpaused (a sync keeps the pause)."""
    settings = temporal_settings()

    async def go() -> None:
        client = await connect(settings)
        ids = await pause_schedules(client, _cluster_name(cluster), kinds or [], note)
        console.print(toggled_report(ids, paused=True, note=note))

    run_async(go)


@schedule_app.command("unpause")
def unpause(cluster: ClusterOpt, kinds: KindsArg = None, note: NoteOpt = None) -> None:
    """Resume paused schedules."""
    settings = temporal_settings()

    async def go() -> None:
        client = await connect(settings)
        ids = await unpause_schedules(client, _cluster_name(cluster), kinds or [], note)
        console.print(toggled_report(ids, paused=False, note=note))

    run_async(go)


@schedule_app.command("trigger")
def trigger(
    cluster: ClusterOpt,
    kind: Annotated[ScheduleKind, typer.Argument(help="Which schedule to run now.")],
) -> None:
    """Run a schedule now, through the schedule (it waits for a busy cluster like any run)."""
    settings = temporal_settings()

    async def go() -> None:
        name = _cluster_name(cluster)
        client = await connect(settings)
        result = await trigger_schedule(client, name, kind)
        url = settings.workflow_url(result.workflow_id) if result.workflow_id else ""
        # soft_wrap: a hard line break would split the command to copy.
        console.print(trigger_report(result, name, url), soft_wrap=True)
        await _warn_without_worker(client, settings)

    run_async(go)
