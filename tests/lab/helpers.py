"""Helpers of the lab tests: bounded waits, and commands run past pgha (docker exec)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import psycopg
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


async def write_then_read_on_standby(read_write: str, read_only: str, password: str) -> None:
    """An application's view, past pgha: commit a row through ``read_write`` and wait until
    ``read_only`` leads to a standby that has it (libpq connection strings or URIs)."""
    token = uuid.uuid4().hex
    with psycopg.connect(read_write, user="postgres", password=password, autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS public.outside_check (t text)")
        c.execute("INSERT INTO public.outside_check VALUES (%s)", (token,))
    row = None
    for _ in range(50):
        with psycopg.connect(read_only, user="postgres", password=password) as c:
            row = c.execute(
                "SELECT pg_is_in_recovery(), count(*) FROM public.outside_check WHERE t = %s",
                (token,),
            ).fetchone()
        if row == (True, 1):
            return
        await asyncio.sleep(0.2)
    assert row == (True, 1), f"{read_only} never showed the row written through {read_write}"
