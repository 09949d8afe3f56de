"""`pgha guard start|stop`, `pgha event send` and `pgha events`: typer commands over
pgha.guardian_control; parse, call, print. No logic."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from pgha.cli_support import console, run_async
from pgha.event_kinds import EventKind
from pgha.event_models import ExternalEvent, GuardianView
from pgha.guardian_control import guardian_view, send_event, start_guardian, stop_guardian
from pgha.settings import temporal_settings
from pgha.spec import load_spec
from pgha.temporal import connect
from pgha.worker import worker_polling

guard_app = typer.Typer(
    help="The cluster's guardian: a workflow that watches the cluster and reacts to its events.",
    no_args_is_help=True,
)
event_app = typer.Typer(help="Events for a cluster's guardian.", no_args_is_help=True)

ClusterOpt = Annotated[
    str,
    typer.Option(
        "--cluster", "-c", help="Cluster name (reads clusters/NAME.yaml) or a path to a spec."
    ),
]


@guard_app.command("start")
def guard_start(cluster: ClusterOpt) -> None:
    """Start the guardian (or hand a running one the current spec). It runs on the
    `pgha worker` processes, not in this command."""

    async def go() -> None:
        spec = load_spec(cluster)
        settings = temporal_settings()
        client = await connect(settings)
        wf, started = await start_guardian(client, spec, settings.task_queue)
        said = "started" if started else "was running; it takes the current spec at its next look"
        console.print(f"guardian of {spec.cluster} {said}: workflow [cyan]{wf}[/]")
        if url := settings.workflow_url(wf):
            console.print(f"watch it in the Temporal Web UI: {url}")
        if not await worker_polling(client, settings.task_queue):
            console.print(f"[yellow]no `pgha worker` polls task queue {settings.task_queue}: the "
                          "guardian looks at nothing until one does[/]")  # fmt: skip

    run_async(go)


@guard_app.command("stop")
def guard_stop(cluster: ClusterOpt) -> None:
    """Stop the guardian after its current step."""

    async def go() -> None:
        spec = load_spec(cluster)
        view = await stop_guardian(await connect(temporal_settings()), spec.cluster)
        console.print(f"guardian of {spec.cluster} stopped after {view.looks} looks")

    run_async(go)


@event_app.command("send")
def event_send(
    cluster: ClusterOpt,
    kind: Annotated[EventKind, typer.Argument(help="What happened.")],
    subject: Annotated[str, typer.Option(help="The member, proxy or backup it is about.")] = "",
    detail: Annotated[str, typer.Option(help="One line saying what happened.")] = "",
    source: Annotated[str, typer.Option(help="Who sends it (shown with the event).")] = "cli",
    data: Annotated[
        str | None, typer.Option(help='More, as a JSON object of strings: \'{"k": "v"}\'.')
    ] = None,
) -> None:
    """Hand the guardian an event from outside (another system, a Patroni callback); it
    handles it like one it saw itself, at once."""
    try:
        extra = json.loads(data) if data else {}
        if not isinstance(extra, dict):
            raise ValueError("not an object")
    except ValueError as err:
        raise typer.BadParameter(f"not a JSON object: {err}", param_hint="--data") from None

    async def go() -> None:
        spec = load_spec(cluster)
        event = ExternalEvent(kind=kind, subject=subject, detail=detail, source=source,
                              data={str(k): str(v) for k, v in extra.items()})  # fmt: skip
        console.print(await send_event(await connect(temporal_settings()), spec.cluster, event))

    run_async(go)


def events_table(view: GuardianView) -> Table:
    table = Table(title=f"events of {view.cluster} (newest last)")
    for column in ("at (UTC)", "event", "subject", "what happened", "during", "done"):
        table.add_column(column)
    for h in view.recent:
        e = h.event
        table.add_row(f"{e.at:%m-%d %H:%M:%S}", e.kind.value, e.subject, e.detail,
                      e.during or "-", "\n".join(h.done))  # fmt: skip
    return table


def events(cluster: ClusterOpt) -> None:
    """The guardian's recent events and what it did about each."""

    async def go() -> None:
        spec = load_spec(cluster)
        view = await guardian_view(await connect(temporal_settings()), spec.cluster)
        seen = f"last look {view.last_at:%Y-%m-%d %H:%M:%S} UTC" if view.last_at else "no look yet"
        console.print(f"guardian of {view.cluster}: {view.looks} looks, {seen}; "
                      f"{view.leader or '?'} leads (timeline {view.timeline})")  # fmt: skip
        console.print(events_table(view) if view.recent else "no event yet")

    run_async(go)
