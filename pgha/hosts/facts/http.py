"""HTTP GETs made on a host, through its own bash: Patroni's REST API and HAProxy's stats
listen on the hosts, and pgha reaches them over SSH (no extra port open to the worker).

Why bash's /dev/tcp and not python3's urllib (which pgha used first): a drill polls every
member twice a second, and a python3 start costs about 60 ms of CPU against bash's 4 ms.
On the lab's two cores that polling took about a third of a core during the very seconds
a failover is measured.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pgha.errors import CommandFailed, HostError
from pgha.hosts.host import Host

#: Connect, send and read, all within this bound (coreutils timeout on the host).
HTTP_TIMEOUT_S = 5


class HttpFailed(CommandFailed):
    """The server answered with a status other than 200, or not as HTTP. Transient, like
    any failed command (Patroni answers 503 while it starts)."""

    def __init__(self, host: Host, url: str, answer: str) -> None:
        self.command, self.exit_code, self.stderr_tail = f"GET {url}", 0, answer
        HostError.__init__(self, host.name, f"host {host.name} ({host.address}): GET {url} "
                                            f"answered {answer}")  # fmt: skip


def get_command(url: str) -> list[str]:
    """argv that GETs ``url`` (plain http) through bash's /dev/tcp and prints the raw
    response (HTTP/1.0: the server closes the connection after its answer).

    :raises ValueError: not an http URL with a host.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not a plain http URL: {url!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    port = parts.port or 80
    script = (
        'exec 3<>"/dev/tcp/$1/$2" && '
        'printf "GET %s HTTP/1.0\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n" "$3" "$1" >&3 '
        "&& cat <&3"
    )
    return ["timeout", str(HTTP_TIMEOUT_S), "bash", "-c", script, "http-get",
            parts.hostname, str(port), path]  # fmt: skip


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


def parse_response(raw: bytes) -> str:
    """The body of a 200 response (chunked transfer decoded). Pure.

    :raises ValueError: another status (the message is the status line), or no HTTP.
    """
    head, sep, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    fields = status_line.split(" ", 2)
    if not sep or len(fields) < 2 or not fields[0].startswith("HTTP/"):
        raise ValueError(f"no HTTP answer ({status_line[:80]!r})")
    if fields[1] != "200":
        raise ValueError(status_line.strip())
    headers = head.decode("latin-1").lower()
    if "\r\ntransfer-encoding: chunked" in headers:
        body = _dechunk(body)
    return body.decode()


async def http_get(host: Host, url: str, timeout: float) -> str:
    """GET ``url`` from ``host`` itself; the body of its 200 answer.

    :raises HttpFailed: the server answered with another status.
    :raises CommandFailed: no connection (refused, timed out).
    """
    out = await host.run(get_command(url), timeout=timeout, label="http-get")
    try:
        return parse_response(out.stdout.encode())
    except ValueError as err:
        raise HttpFailed(host, url, str(err)) from None
