"""GETs through bash's /dev/tcp on a host: the command really fetches (run here against a
local server), and the answer is parsed strictly."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pgha.hosts.facts.http import HttpFailed, get_command, http_get, parse_response
from tests.unit.fakes import FakeHost


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code, body = (200, b'{"members": []}') if self.path == "/cluster?x=1" else (503, b"no")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_the_command_fetches_through_bash_and_the_answer_parses(server: int) -> None:
    url = f"http://127.0.0.1:{server}/cluster?x=1"
    raw = subprocess.run(get_command(url), capture_output=True, timeout=10, check=True).stdout
    assert parse_response(raw) == '{"members": []}'
    other = subprocess.run(get_command(f"http://127.0.0.1:{server}/primary"),
                           capture_output=True, timeout=10, check=True).stdout  # fmt: skip
    with pytest.raises(ValueError, match="503"):
        parse_response(other)


def test_a_refused_connection_fails_the_command() -> None:
    done = subprocess.run(get_command("http://127.0.0.1:9/"), capture_output=True, timeout=10)
    assert done.returncode != 0


def test_chunked_answers_are_decoded_and_garbage_is_refused() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\nabc,\r\n3\r\ndef\r\n0\r\n\r\n")  # fmt: skip
    assert parse_response(chunked) == "abc,def"
    with pytest.raises(ValueError, match="no HTTP answer"):
        parse_response(b"bash: connect: Connection refused")


def test_only_plain_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="not a plain http URL"):
        get_command("https://10.0.0.1:8008/cluster")
    argv = get_command("http://10.0.0.1:8008/cluster")
    assert argv[:4] == ["timeout", "5", "bash", "-c"] and argv[-3:] == [
        "10.0.0.1",
        "8008",
        "/cluster",
    ]


async def test_a_non_200_answer_on_a_host_names_the_url_and_status() -> None:
    host = FakeHost("db1", "10.0.0.11").on("bash -c", "HTTP/1.0 503 Service Unavailable\r\n\r\n")
    with pytest.raises(
        HttpFailed, match=r"GET http://10.0.0.11:8008/primary answered HTTP/1.0 503"
    ):
        await http_get(host, "http://10.0.0.11:8008/primary", 8)
