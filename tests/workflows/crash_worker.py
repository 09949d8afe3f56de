"""A worker process for crash tests: Preflight with a slow fake host check.

Run: python -m tests.workflows.crash_worker ADDRESS TASK_QUEUE LOG SECONDS
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from pgha.worker import build_worker
from pgha.workflows.preflight import Preflight
from tests.workflows.fakes import slow_check_host


async def main(address: str, task_queue: str, log: str, seconds: float) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    worker = build_worker(
        client,
        task_queue,
        workflows=[Preflight],
        activities=[slow_check_host(Path(log), seconds)],  # type: ignore[list-item]
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
    )
    print("worker ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
