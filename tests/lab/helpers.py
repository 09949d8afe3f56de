"""Helpers of the lab tests: bounded waits, and commands run past pgha (docker exec)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest


async def docker_exec(host: str, *argv: str) -> tuple[int, str]:
    """Run a command in a lab container, past pgha and SSH: exit code and stdout."""
    proc = await asyncio.create_subprocess_exec(
        "docker", "exec", f"pgha-lab-{host}", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode().strip()


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float, every: float = 0.5
) -> float:
    """Wait until ``check()`` is true; fail the test after ``within`` seconds.

    :returns: how long it took.
    """
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(every)
    return time.monotonic() - started
