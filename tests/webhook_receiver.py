"""A webhook receiver for tests: an HTTP server on 127.0.0.1 that keeps every POSTed JSON
body and answers with a fixed status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


class Receiver:
    def __init__(self, status: int = 204) -> None:
        self.status, self.url = status, ""
        self.bodies: list[dict[str, Any]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = next((int(h.split(":", 1)[1]) for h in head.split("\r\n")
                       if h.lower().startswith("content-length:")), 0)  # fmt: skip
        self.bodies.append(json.loads(await reader.readexactly(length)))
        writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    def kinds(self) -> list[str]:
        return [b["kind"] for b in self.bodies]


@asynccontextmanager
async def receiving(status: int = 204) -> AsyncIterator[Receiver]:
    r = Receiver(status)
    server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
    r.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    try:
        yield r
    finally:
        server.close()
