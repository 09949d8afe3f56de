"""One SSH-reachable host: runs commands (through sudo when needed) with limits and spans.

Never imports temporalio: activities translate these errors for Temporal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncssh
from opentelemetry import trace
from pydantic import SecretStr

from pgha.errors import CommandFailed, CommandTimedOut, HostUnreachable
from pgha.hosts.commandline import (
    KILL_AFTER_S,
    SUDO_NOPASSWD,
    SUDO_PASSWORD,
    SUDO_PROBE,
    SUDO_WANTS_PASSWORD,
    Command,
    exit_code,
    mask,
    new_tag,
    no_sudo_password,
    remote_command,
    render_command,
    stderr_tail,
    stop_command,
    sudo_bad_password,
    sudo_refused,
    text,
    wrong_sudo_password,
)
from pgha.hosts.connections import close_all, connection, drop, link
from pgha.hosts.result import CommandResult
from pgha.models import HostTarget

__all__ = ["Command", "Host", "close_all", "connect", "mask", "render_command", "stderr_tail"]

tracer = trace.get_tracer("pgha.hosts")

#: When sshd refuses to open a channel (MaxSessions reached, e.g. on a hardened host or by
#: other clients), pgha retries on the same connection after these pauses, then gives up.
CHANNEL_OPEN_RETRY_S = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0)
#: How much longer than the limit pgha waits for the host to end the command itself.
LOCAL_GRACE_S = KILL_AFTER_S + 5
#: How long sshd may take to open a channel and start a command; no answer means the
#: host or the network is gone (asyncssh's keepalive then closes the connection).
CHANNEL_OPEN_S = 15.0
#: Bound on the sudo check, a short command pgha runs for itself.
SHORT_S = 30.0
#: Bound on stopping a command pgha no longer waits for.
STOP_S = 10.0


class _Overdue(Exception):
    """The host did not end a command within the time pgha waits for it."""


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
        self._link = link(conn)

    @property
    def needs_sudo(self) -> bool:
        return self.target.sudo and self.target.user != "root"

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
        """Run one command under POSIX sh (as root, through sudo when the target says so).

        pgha leaves no command running that it stopped waiting for: at ``timeout`` the host
        itself stops it (TERM, then KILL :data:`KILL_AFTER_S` later), even when the
        connection is gone; when the caller is cancelled, pgha stops it (and everything it
        started) before re-raising. Without a ``timeout``, a command whose connection dies
        runs on: give one to anything that must not outlive the activity.

        :param cmd: an argv list (quoted for you) or a shell command line.
        :param check: raise :class:`CommandFailed` on a non-zero exit.
        :param input: exactly what the command reads on stdin (nothing: stdin is empty).
        :param timeout: seconds the command may run, enforced on the host.
        :param label: a short name for spans and errors, instead of the first word.
        :param secrets: values to mask wherever the command or its output is reported;
            the sudo password is always masked.
        :raises HostUnreachable: when the connection fails or drops, or sshd keeps
            refusing a channel (safe to retry).
        :raises CommandTimedOut: the command ran past ``timeout`` (safe to retry).
        :raises SudoRefused: sudo wants a password pgha lacks, or rejects it (permanent).
        :raises CommandFailed: when ``check`` and the command exits non-zero.
        """
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        line = render_command(cmd)
        secrets = [*secrets, self._sudo_password] if self._sudo_password else list(secrets)
        shown = mask(line, secrets)
        name = label or (cmd[0] if not isinstance(cmd, str) else line.split(" ", 1)[0])
        with tracer.start_as_current_span(
            f"ssh {name}",
            attributes={
                "pgha.host": self.name,
                "net.peer.name": self.address,
                "pgha.command": name,
            },
        ) as span:
            started = time.monotonic()
            sudo, password_line = await self._sudo()
            tag = new_tag()
            try:
                proc, ran_s = await self._exec(
                    remote_command(line, tag, timeout, sudo),
                    password_line + (input or ""),
                    shown,
                    wait_s=None if timeout is None else timeout + LOCAL_GRACE_S,
                    stop=(tag, sudo, password_line),
                )
            except _Overdue:
                span.set_attribute("pgha.timeout", True)
                raise CommandTimedOut(
                    self.name,
                    self.address,
                    shown,
                    timeout or 0,
                    f"the host did not stop it within {LOCAL_GRACE_S} s after that either; "
                    "pgha sent it TERM",
                ) from None
            code = exit_code(proc)
            span.set_attribute("pgha.exit_code", code)
            # `timeout` exits 124 after TERM, or dies of KILL (137). The command itself
            # may exit 124 too, but not after running past its limit.
            if timeout is not None and code in (124, 137) and ran_s >= timeout:
                span.set_attribute("pgha.timeout", True)
                raise CommandTimedOut(
                    self.name,
                    self.address,
                    shown,
                    timeout,
                    "it was stopped on the host"
                    + (
                        f" (it ignored TERM and was killed {KILL_AFTER_S} s later)"
                        if code == 137
                        else ""
                    ),
                )
            stderr = mask(text(proc.stderr), secrets)
            if password_line and code == 1 and sudo_bad_password(stderr):
                # The password changed since sudo accepted it on this connection.
                self._link.sudo_accepted.clear()
                raise wrong_sudo_password(self.target, stderr)
            result = CommandResult(
                host=self.name,
                command=shown,
                exit_code=code,
                stdout=text(proc.stdout),
                stderr=stderr,
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

    # --- channels ---------------------------------------------------------------------------

    async def _exec(
        self,
        remote: str,
        stdin: str,
        shown: str,
        *,
        wait_s: float | None,
        stop: tuple[str, str, str] | None = None,
        bounded: bool = True,
    ) -> tuple[asyncssh.SSHCompletedProcess, float]:
        """Run ``remote`` to its end on a channel of the shared connection.

        :param wait_s: how long to wait for the command once it started.
        :param stop: (tag, sudo prefix, password line) to stop the command on the host
            when pgha stops waiting for it; None: just close the channel.
        :param bounded: wait for one of the connection's channels; False only for the
            stop command, which must not queue behind the commands it may have to stop.
        :returns: the finished process and how long it ran.
        :raises _Overdue: after ``wait_s`` (the command was stopped).
        :raises HostUnreachable: see :meth:`run`.
        """
        proc: asyncssh.SSHClientProcess[str] | None = None
        started = False
        try:
            async with self._link.channels if bounded else contextlib.nullcontext():
                # Once asked for, the command may start even if we are cancelled meanwhile.
                started = True
                proc = await self._open_channel(remote, stdin, shown)
                began = time.monotonic()
                try:
                    done = await asyncio.wait_for(proc.wait(), wait_s)
                except (TimeoutError, asyncio.CancelledError):
                    self._abandon(proc)
                    raise
                except (OSError, asyncssh.Error) as err:
                    raise self._link_failed(err, shown) from None
        except TimeoutError:
            await self._stop(stop)
            raise _Overdue from None
        except asyncio.CancelledError:
            if started:
                await self._stop(stop)
            raise
        if done.returncode is None and self._conn.is_closed():
            raise self._link_failed(asyncssh.ConnectionLost("connection closed"), shown)
        return done, time.monotonic() - began

    async def _open_channel(
        self, remote: str, stdin: str, shown: str
    ) -> asyncssh.SSHClientProcess[str]:
        """A new session channel running ``remote``; stdin gets ``stdin``, then EOF.

        A refused channel (sshd's MaxSessions) is retried on the same connection: closing
        a shared connection would kill the commands other activities run on it.
        """
        for pause in (*CHANNEL_OPEN_RETRY_S, None):
            try:
                proc: asyncssh.SSHClientProcess[str] = await asyncio.wait_for(
                    self._conn.create_process(
                        remote,
                        input=stdin or None,
                        stdin=asyncssh.PIPE if stdin else asyncssh.DEVNULL,
                        encoding="utf-8",
                        errors="replace",
                    ),
                    CHANNEL_OPEN_S,
                )
                return proc
            except TimeoutError:
                raise HostUnreachable(
                    self.name,
                    f"host {self.target.label}: the SSH server did not start `{shown}` within "
                    f"{CHANNEL_OPEN_S:g} s; the host or the network may be down",
                ) from None
            except asyncssh.ChannelOpenError as err:
                if pause is None or self._conn.is_closed():
                    raise self._link_failed(err, shown, refused=True) from None
                await asyncio.sleep(pause)
            except (OSError, asyncssh.Error) as err:
                raise self._link_failed(err, shown) from None
        raise AssertionError("unreachable")

    def _link_failed(self, err: Exception, shown: str, *, refused: bool = False) -> HostUnreachable:
        """The error to raise; drops the pooled connection only when it is really broken."""
        if isinstance(err, asyncssh.DisconnectError) or self._conn.is_closed():
            drop(self.target, self._conn)
        elif refused:
            return HostUnreachable(
                self.name,
                f"host {self.target.label}: the SSH server refused to open a channel for "
                f"`{shown}` {len(CHANNEL_OPEN_RETRY_S) + 1} times over "
                f"{sum(CHANNEL_OPEN_RETRY_S):.0f} s ({err}); it may allow fewer sessions per "
                f"connection (sshd MaxSessions) than pgha uses, or other clients hold them",
            )
        return HostUnreachable(
            self.name, f"host {self.target.label}: SSH link failed during `{shown}`: {err}"
        )

    @staticmethod
    def _abandon(proc: asyncssh.SSHClientProcess[str]) -> None:
        """Ask sshd to TERM the command, and close its channel.

        Only a part of stopping it (see :meth:`_stop`): sshd signals the command only for
        a non-root login (sudo relays the signal), and it neither signals nor hangs up a
        command without a PTY when its channel closes.
        """
        try:
            proc.terminate()
        except (OSError, asyncssh.Error):
            pass
        proc.close()

    async def _stop(self, stop: tuple[str, str, str] | None) -> None:
        """Stop a command pgha no longer waits for, with everything it started. Best effort.

        TERMs its `timeout` wrapper, found by tag; that TERMs the command's process group
        and KILLs it :data:`KILL_AFTER_S` later if something lingers.
        """
        if stop is None:
            return
        tag, sudo, password_line = stop
        try:
            async with asyncio.timeout(STOP_S):
                done, _ = await self._exec(
                    stop_command(tag, sudo), password_line, "stop", wait_s=None, bounded=False
                )
            # pkill exits 1 when the command had ended already; 127: no procps on the host.
            failed = done.exit_status not in (0, 1)
        except (TimeoutError, HostUnreachable):
            failed = True
        trace.get_current_span().set_attribute("pgha.stop_failed", failed)

    # --- sudo -------------------------------------------------------------------------------

    async def _sudo(self) -> tuple[str, str]:
        """The sudo prefix for this host's command lines, and the line stdin starts with.

        Finds out once per connection whether sudo needs a password at all: a password
        line sent to a sudo that does not read it would become the command's input.
        Idempotent.

        :raises SudoRefused: sudo needs a password and none is configured, rejects it,
            refuses the user, or is not installed.
        """
        if not self.needs_sudo:
            return "", ""
        state = self._link
        async with state.sudo_lock:
            if state.sudo_nopasswd is None:
                state.sudo_nopasswd = await self._sudo_probe()
            if state.sudo_nopasswd:
                return SUDO_NOPASSWD, ""
            password = self._sudo_password.get_secret_value() if self._sudo_password else ""
            if not password:
                raise no_sudo_password(self.target)
            digest = hashlib.sha256(password.encode()).hexdigest()
            if digest not in state.sudo_accepted:
                await self._sudo_check(SUDO_PASSWORD, password + "\n")
                state.sudo_accepted.add(digest)
            return SUDO_PASSWORD, password + "\n"

    async def _sudo_probe(self) -> bool:
        """Whether sudo runs commands for this user without a password (cached ones aside)."""
        stderr = await self._sudo_check(SUDO_PROBE, "")
        return stderr is None

    async def _sudo_check(self, sudo: str, password_line: str) -> str | None:
        """Run `true` through sudo: None when it worked; sudo's stderr when it wants a
        password and none was given; SudoRefused for anything else."""
        shown = f"{sudo}true"
        try:
            proc, _ = await self._exec(
                remote_command("true", new_tag(), None, sudo), password_line, shown, wait_s=SHORT_S
            )
        except _Overdue:
            raise CommandTimedOut(
                self.name, self.address, shown, SHORT_S, "sudo may be waiting on its PAM stack"
            ) from None
        if proc.exit_status == 0:
            return None
        stderr = mask(text(proc.stderr), [self._sudo_password] if self._sudo_password else [])
        if not password_line and SUDO_WANTS_PASSWORD in stderr:
            return stderr
        if password_line and sudo_bad_password(stderr):
            raise wrong_sudo_password(self.target, stderr)
        raise sudo_refused(self.target, stderr, proc.exit_status)


@asynccontextmanager
async def connect(
    target: HostTarget, *, sudo_password: SecretStr | None = None
) -> AsyncIterator[Host]:
    """A :class:`Host` on a pooled connection (opened on first use, reused after).

    :raises HostKeyMismatch, HostKeyUnknown, HostLoginRefused, SshKeyUnusable: permanent.
    :raises HostUnreachable: cannot connect (transient).
    """
    conn = await connection(target)
    yield Host(target, conn, sudo_password)
