"""A real pgha worker in its own process, for crash tests: python -m tests.lab.provision_worker
ADDRESS TASK_QUEUE. Prints "worker ready" once it polls."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from pgha.worker import build_worker


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    worker = build_worker(
        client, task_queue, sticky_queue_schedule_to_start_timeout=timedelta(seconds=1)
    )
    print("worker ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
