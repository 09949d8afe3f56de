"""`pgha lab ...`: a typer sub-app over pgha.lab.hosts; parses, calls, prints. No logic."""

from __future__ import annotations

from collections.abc import Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from pgha.cli_support import console, run_async
from pgha.lab.hosts import LabHost, LabUpResult, lab_down, lab_power, lab_status, lab_up
from pgha.lab.layout import DEFAULT_HOSTS, MIN_HOSTS

T = TypeVar("T")


lab_app = typer.Typer(
    help="A local lab: docker containers with systemd and sshd, to try pgha without servers.",
    no_args_is_help=True,
)


class Power(StrEnum):
    off = "off"
    on = "on"


def _run(coro: Coroutine[Any, Any, T]) -> T:
    async def go() -> T:
        return await coro

    return run_async(go)


def _table(hosts: list[LabHost], actions: dict[str, str] | None = None) -> Table:
    table = Table("host", "address", "roles", "state", "container")
    if actions is not None:
        table.add_column("lab up")
    for h in hosts:
        state = f"[green]{h.state}[/green]" if h.state == "running" else f"[red]{h.state}[/red]"
        row = [h.name, h.address, ", ".join(r.value for r in h.roles), state, h.container]
        if actions is not None:
            row.append(actions.get(h.name, ""))
        table.add_row(*row)
    return table


def _progress(line: str) -> None:
    console.print(f"[dim]{line}[/dim]", highlight=False)


@lab_app.command()
def up(
    hosts: Annotated[
        int | None,
        typer.Option(
            "--hosts",
            help="5 (no backup host), 6, 7 (adds verify1), up to 13; default: keep the "
            "running lab's size, else 6",
        ),
    ] = None,
    clusters_dir: Annotated[
        Path, typer.Option("--clusters-dir", help="Where to write lab.yaml")
    ] = Path("clusters"),
) -> None:
    """Create or start the lab hosts and write clusters/lab.yaml. Safe to rerun."""
    result = _run(_up(hosts, clusters_dir))
    console.print(_table(result.hosts, {k: v.value for k, v in result.actions.items()}))
    if result.removed:
        console.print(f"removed: {', '.join(result.removed)}")
    first = result.hosts[0]
    console.print(
        f"lab up in {result.seconds:.0f} s; spec: [bold]{result.spec_path}[/bold]\n"
        f"ssh: ssh -i {result.key_file} -o UserKnownHostsFile={result.known_hosts} "
        f"-o StrictHostKeyChecking=yes root@{first.address}",
        highlight=False,
        soft_wrap=True,
    )


async def _up(hosts: int | None, clusters_dir: Path) -> LabUpResult:
    if hosts is None:
        # Re-running `pgha lab up` must never shrink a lab someone grew with --hosts.
        running = await lab_status()
        hosts = len(running) if len(running) >= MIN_HOSTS else DEFAULT_HOSTS
    return await lab_up(hosts, clusters_dir, progress=_progress)


@lab_app.command()
def down(
    clusters_dir: Annotated[
        Path, typer.Option("--clusters-dir", help="Where lab.yaml was written")
    ] = Path("clusters"),
) -> None:
    """Remove the lab hosts, their network and lab.yaml. Keeps the image for a fast `up`."""
    result = _run(lab_down(clusters_dir))
    console.print(f"removed hosts: {', '.join(result.removed) or 'none'}")
    if result.spec_removed:
        console.print(f"removed {result.spec_removed}")
    if result.spec_kept:
        console.print(f"[yellow]{result.spec_kept}[/yellow]")


@lab_app.command()
def status() -> None:
    """List the lab hosts with their container state."""
    hosts = _run(lab_status())
    if not hosts:
        console.print("no lab hosts; create them with `pgha lab up`")
        return
    console.print(_table(hosts))


@lab_app.command()
def power(
    action: Annotated[Power, typer.Argument(help="off = pull the plug (docker kill); on = boot")],
    host: Annotated[str, typer.Argument(help="A lab host, e.g. db1")],
) -> None:
    """Power a lab host off (abruptly, like a power loss) or on (waits for sshd)."""
    result = _run(lab_power(host, action is Power.on))
    verb = "powered" if result.changed else "already"
    console.print(f"{host} {verb} {action.value} ({result.host.state})")
