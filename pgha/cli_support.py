"""What every `pgha` command shares: running a coroutine, and turning errors into one line.

Errors a user can act on (PghaError, Temporal's RPC refusals) print as a message and exit
non-zero (2 for an invalid spec); a traceback only with `pgha --debug`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from temporalio.service import RPCError

from pgha.errors import PghaError, SpecError
from pgha.hosts.host import close_all
from pgha.settings import temporal_settings

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


class State:
    """Global CLI flags, set by the top-level callback."""

    debug = False


def print_error(message: str) -> None:
    # soft_wrap: hard line breaks would split the commands the messages suggest.
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def rpc_message(err: RPCError) -> str:
    settings = temporal_settings()
    where = f"Temporal at {settings.target} (namespace {settings.namespace})"
    text = f"{where} refused the request: {err.message.rstrip('.')}"
    if "search attribute" in err.message.lower():
        text += (
            ". Register pgha's search attributes once: `temporal operator search-attribute "
            "create --name PghaCluster --type Keyword` and the same for PghaOperation"
        )
    elif "namespace" in err.message.lower():
        text += ". Check PGHA_TEMPORAL_NAMESPACE"
    return text


def run_async(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine; close pooled SSH connections; print errors plainly."""

    async def main() -> T:
        try:
            return await coro_fn()
        finally:
            await close_all()

    try:
        return asyncio.run(main())
    except PghaError as err:
        if State.debug:
            raise
        print_error(str(err))
        raise typer.Exit(2 if isinstance(err, SpecError) else 1) from None
    except RPCError as err:
        if State.debug:
            raise
        print_error(rpc_message(err))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("interrupted; a started workflow keeps running (see `pgha watch`)")
        raise typer.Exit(130) from None
