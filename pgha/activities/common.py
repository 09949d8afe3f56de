"""What every activity shares: opening a host with resolved secrets, and error translation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity
from temporalio.exceptions import ApplicationError

from pgha import secrets
from pgha.errors import PERMANENT_HOST_ERRORS, SettingsError
from pgha.hosts.host import Host, connect
from pgha.models import HostTarget


@asynccontextmanager
async def open_host(target: HostTarget) -> AsyncIterator[Host]:
    """A connected host; permanent failures become non-retryable ApplicationErrors.

    Transient ones (HostUnreachable, CommandTimedOut, CommandFailed) stay plain exceptions
    so Temporal retries them by the activity's policy.
    """
    try:
        password = secrets.resolve(target.sudo_password) if target.sudo_password else None
        async with connect(target, sudo_password=password) as host:
            yield host
    except PERMANENT_HOST_ERRORS as err:
        raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from None
    except SettingsError as err:
        raise ApplicationError(str(err), type="SettingsError", non_retryable=True) from None


@asynccontextmanager
async def heartbeating(every_s: float = 2.0) -> AsyncIterator[None]:
    """Heartbeat in the background while the body runs, so a dead worker is noticed and a
    cancellation reaches us, even during one long remote command."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
