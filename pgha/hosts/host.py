"""One SSH-reachable host: pooled asyncssh connections, sudo, command results, spans.

Never imports temporalio: activities translate these errors for Temporal.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
from opentelemetry import trace
from pydantic import SecretStr

from pgha.errors import (
    CommandFailed,
    HostKeyMismatch,
    HostKeyUnknown,
    HostLoginRefused,
    HostUnreachable,
)
from pgha.hosts.result import CommandResult
from pgha.models import HostTarget

tracer = trace.get_tracer("pgha.hosts")

#: OpenSSH's default MaxSessions is 10 channels per connection; stay under it.
MAX_CHANNELS_PER_CONNECTION = 8
#: How much of stderr an error carries.
STDERR_TAIL_LINES = 15

Command = Sequence[str] | str


def _expand(path: str | None) -> str | None:
    return os.path.expanduser(path) if path else None


def render_command(cmd: Command) -> str:
    """A list is quoted word by word; a string is passed to the remote shell as it is."""
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def mask(text: str, secrets: Sequence[SecretStr]) -> str:
    for s in secrets:
        value = s.get_secret_value()
        if value:
            text = text.replace(value, "********")
    return text


def stderr_tail(stderr: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(stderr.strip().splitlines()[-lines:])


class Host:
    """Runs commands on one host over a shared SSH connection.

    Use :func:`connect` to get one; it reuses connections per host within an event loop.
    """

    def __init__(
        self,
        target: HostTarget,
        conn: asyncssh.SSHClientConnection,
        sudo_password: SecretStr | None = None,
    ) -> None:
        self.target = target
        self.name = target.name
        self.address = target.address
        self._conn = conn
        self._sudo_password = sudo_password
        self._channels = _channel_limit(conn)

    @property
    def needs_sudo(self) -> bool:
        return self.target.sudo and self.target.user != "root"

    def _wrap(self, line: str) -> str:
        if not self.needs_sudo:
            return line
        flag = "-S -p ''" if self._sudo_password else "-n"
        return f"sudo {flag} -- sh -c {shlex.quote(line)}"

    async def run(
        self,
        cmd: Command,
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        label: str | None = None,
        secrets: Sequence[SecretStr] = (),
    ) -> CommandResult:
        """Run one command (as root, through sudo when the target says so).

        :param cmd: an argv list (quoted for you) or a shell command line.
        :param check: raise :class:`CommandFailed` on a non-zero exit.
        :param label: a short name for spans and errors, instead of the first word.
        :param secrets: values to mask wherever the command or its output is reported.
        :raises HostUnreachable: when the connection fails or drops (safe to retry).
        :raises CommandFailed: when ``check`` and the command exits non-zero.
        """
        line = render_command(cmd)
        shown = mask(line, secrets)
        name = label or (cmd[0] if not isinstance(cmd, str) else line.split(" ", 1)[0])
        stdin = input
        if self.needs_sudo and self._sudo_password:
            stdin = self._sudo_password.get_secret_value() + "\n" + (input or "")
        with tracer.start_as_current_span(
            f"ssh {name}",
            attributes={
                "pgha.host": self.name,
                "net.peer.name": self.address,
                "pgha.command": name,
            },
        ) as span:
            started = time.monotonic()
            try:
                async with self._channels:
                    proc = await asyncio.wait_for(
                        self._conn.run(self._wrap(line), input=stdin, check=False), timeout
                    )
            except TimeoutError:
                span.set_attribute("pgha.timeout", True)
                raise HostUnreachable(
                    self.name,
                    f"host {self.target.label}: `{shown}` did not finish within {timeout} s",
                ) from None
            except (OSError, asyncssh.Error) as err:
                _drop(self.target)
                raise HostUnreachable(
                    self.name, f"host {self.target.label}: SSH link failed during `{shown}`: {err}"
                ) from None
            code = proc.exit_status if proc.exit_status is not None else 255
            span.set_attribute("pgha.exit_code", code)
            result = CommandResult(
                host=self.name,
                command=shown,
                exit_code=code,
                stdout=_text(proc.stdout),
                stderr=mask(_text(proc.stderr), secrets),
                duration_s=time.monotonic() - started,
            )
        if check and not result.ok:
            # stdout is returned unmasked for parsing, but never reported unmasked.
            tail = mask(stderr_tail(result.stderr or result.stdout), secrets)
            raise CommandFailed(self.name, self.address, shown, code, tail)
        return result

    async def run_all(self, cmds: Sequence[Command], **kw: object) -> list[CommandResult]:
        """Run commands one after another, stopping at the first failure."""
        return [await self.run(c, **kw) for c in cmds]  # type: ignore[arg-type]


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _channel_limit(conn: asyncssh.SSHClientConnection) -> asyncio.Semaphore:
    sem = _semaphores.get(id(conn))
    if sem is None:
        sem = _semaphores[id(conn)] = asyncio.Semaphore(MAX_CHANNELS_PER_CONNECTION)
    return sem


_PoolKey = tuple[int, str, int, str, str | None, str | None]
_pool: dict[_PoolKey, asyncssh.SSHClientConnection] = {}
_semaphores: dict[int, asyncio.Semaphore] = {}
_locks: dict[_PoolKey, asyncio.Lock] = {}


def _key(target: HostTarget) -> _PoolKey:
    loop = id(asyncio.get_running_loop())
    return (loop, target.address, target.port, target.user, target.key_file, target.known_hosts)


def _drop(target: HostTarget) -> None:
    try:
        conn = _pool.pop(_key(target), None)
    except RuntimeError:
        return
    if conn is not None:
        _semaphores.pop(id(conn), None)
        conn.close()


def _known_hosts_name(target: HostTarget) -> str:
    """How known_hosts names the host: ``addr``, or ``'[addr]:port'`` off port 22."""
    if target.port == 22:
        return target.address
    return shlex.quote(f"[{target.address}]:{target.port}")


def _known_key_exists(target: HostTarget, known_hosts: str) -> bool:
    try:
        db = asyncssh.read_known_hosts(known_hosts)
    except (OSError, ValueError):
        return False
    keys = db.match(target.address, target.address, target.port)
    return bool(keys[0] or keys[1])


async def _open(target: HostTarget) -> asyncssh.SSHClientConnection:
    known_hosts = _expand(target.known_hosts)
    if known_hosts is None or not Path(known_hosts).is_file():
        raise HostKeyUnknown(
            target.name,
            f"host {target.label}: known_hosts file {known_hosts} does not exist; pgha "
            "verifies every host key. Add the host's key (check its fingerprint first): "
            f"`ssh-keyscan -p {target.port} {target.address} >> {target.known_hosts}`",
        )
    key_file = _expand(target.key_file)
    try:
        return await asyncio.wait_for(
            asyncssh.connect(
                target.address,
                port=target.port,
                username=target.user,
                # () = the default keys (~/.ssh/id_*) and the agent; None would turn
                # public key authentication off altogether.
                client_keys=[key_file] if key_file else (),
                known_hosts=known_hosts,
                agent_path=None if key_file else (),
                keepalive_interval=15,
                keepalive_count_max=3,
                login_timeout=target.connect_timeout,
                config=(),
            ),
            target.connect_timeout + 5,
        )
    except asyncssh.HostKeyNotVerifiable as err:
        if _known_key_exists(target, known_hosts):
            raise HostKeyMismatch(
                target.name,
                f"host {target.label}: the SSH host key does not match the one in "
                f"{target.known_hosts}. If the host was rebuilt, remove the old entry "
                f"(`ssh-keygen -R {_known_hosts_name(target)} -f {target.known_hosts}`) and "
                "add the new "
                "key after checking its fingerprint; otherwise someone may be intercepting "
                f"the connection. ({err.reason})",
            ) from None
        raise HostKeyUnknown(
            target.name,
            f"host {target.label}: no key for {target.address} in {target.known_hosts}; add "
            "it after checking its fingerprint: "
            f"`ssh-keyscan -p {target.port} {target.address} >> {target.known_hosts}`",
        ) from None
    except asyncssh.PermissionDenied:
        raise HostLoginRefused(
            target.name,
            f"host {target.label}: SSH login as {target.user} with key {target.key_file} "
            "was refused; install the public key in that user's authorized_keys",
        ) from None
    except (TimeoutError, OSError, asyncssh.Error) as err:
        reason = str(err) or type(err).__name__
        raise HostUnreachable(
            target.name,
            f"host {target.label}: cannot connect over SSH to port {target.port}: {reason}",
        ) from None


async def _connection(target: HostTarget) -> asyncssh.SSHClientConnection:
    key = _key(target)
    lock = _locks.setdefault(key, asyncio.Lock())
    async with lock:
        conn = _pool.get(key)
        if conn is None or conn.is_closed():
            conn = await _open(target)
            _pool[key] = conn
        return conn


@asynccontextmanager
async def connect(
    target: HostTarget, *, sudo_password: SecretStr | None = None
) -> AsyncIterator[Host]:
    """A :class:`Host` on a pooled connection (opened on first use, reused after).

    :raises HostKeyMismatch, HostKeyUnknown: host key verification failed (permanent).
    :raises HostUnreachable: cannot connect or log in (transient).
    """
    conn = await _connection(target)
    yield Host(target, conn, sudo_password)


async def close_all() -> None:
    """Close every pooled connection of the running loop (worker shutdown, tests)."""
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _pool if k[0] == loop]:
        conn = _pool.pop(key)
        _semaphores.pop(id(conn), None)
        conn.close()
        await conn.wait_closed()
