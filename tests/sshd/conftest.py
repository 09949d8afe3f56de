"""tests/sshd: close the pooled SSH connections once, when the session's loop ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from pgha.hosts.host import close_all


@pytest_asyncio.fixture(scope="session", autouse=True)
async def _close_pooled_connections() -> AsyncIterator[None]:
    yield
    await close_all()
