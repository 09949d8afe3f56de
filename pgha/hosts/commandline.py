"""What a command becomes before sshd runs it: quoting, masking, the sudo and `timeout`
wrappers, and what sudo's answers mean. Pure: runs nothing (pgha.hosts.host does).
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Sequence

import asyncssh
from pydantic import SecretStr

from pgha.errors import SudoRefused
from pgha.models import HostTarget

#: How much of stderr an error carries.
STDERR_TAIL_LINES = 15
#: At a command's time limit `timeout` sends TERM, and KILL this much later.
KILL_AFTER_S = 5
#: Marks each command's process on the host, so that it can be found and stopped.
TAG_PREFIX = "pgha-run:"

SUDO_NOPASSWD = "sudo -n -- "
# -S: the password comes on stdin, as its first line. -k: ignore cached credentials, so
# sudo always reads that line, never leaving it to the command. -p '': no prompt on stderr.
SUDO_PASSWORD = "sudo -S -k -p '' -- "
# -k here too: cached credentials would make a password user look like a NOPASSWD one
# until they expire.
SUDO_PROBE = "sudo -k -n -- "
#: What sudo -n says when it would need a password.
SUDO_WANTS_PASSWORD = "password is required"
#: What sudo prints when the password it read was wrong.
SUDO_BAD_PASSWORD = ("incorrect password attempt", "Sorry, try again")

Command = Sequence[str] | str


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


def new_tag() -> str:
    return f"{TAG_PREFIX}{uuid.uuid4().hex}"


def remote_command(line: str, tag: str, limit: float | None = None, sudo: str = "") -> str:
    """The command line sshd runs for ``line``.

    ``line`` runs under POSIX sh, inside coreutils `timeout`: that makes it a process group
    of its own and, at ``limit`` (0: none) or when it gets TERM, signals the whole group,
    then KILLs it :data:`KILL_AFTER_S` later. So the host enforces the limit even when
    pgha is gone, and one signal to `timeout` stops everything the command started.
    `timeout` runs inside sudo, as root, so it may signal what it watches. ``tag`` becomes
    sh's ``$1``, so that :func:`stop_command` finds the process.
    """
    seconds = "0" if limit is None else f"{max(limit, 0.001):.3f}"
    return f"{sudo}timeout -k {KILL_AFTER_S}s {seconds}s sh -c {shlex.quote(line)} sh {tag}"


def stop_command(tag: str, sudo: str = "") -> str:
    """The command line that TERMs the `timeout` wrapper of the command tagged ``tag``.

    The ``[:]`` keeps the pattern from matching the shells that run this very line.
    """
    pattern = f"{TAG_PREFIX[:-1]}[:]{tag.removeprefix(TAG_PREFIX)}$"
    return f"{sudo}pkill -TERM -f {shlex.quote('^timeout .*' + pattern)}"


def text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def exit_code(proc: asyncssh.SSHCompletedProcess) -> int:
    """The exit status, or 128 + the signal number as a shell reports a killed command."""
    code = proc.returncode
    if code is None:
        return 255
    return 128 - code if code < 0 else int(code)


def sudo_bad_password(stderr: str) -> bool:
    return any(s in stderr for s in SUDO_BAD_PASSWORD)


def no_sudo_password(target: HostTarget) -> SudoRefused:
    user = target.user
    return SudoRefused(
        target.name,
        f"host {target.label}: sudo asks user {user} for a password, and none is "
        "configured. Set ssh.sudo_password in the cluster spec, or allow "
        f"{user} to use sudo without one (NOPASSWD in a sudoers rule).",
    )


def wrong_sudo_password(target: HostTarget, stderr: str) -> SudoRefused:
    """:param stderr: sudo's, with the password already masked."""
    said = [ln.strip() for ln in stderr.splitlines() if sudo_bad_password(ln)]
    user = target.user
    return SudoRefused(
        target.name,
        f"host {target.label}: sudo rejected the password of user {user}"
        f"{f' ({said[-1]})' if said else ''}. Correct the secret that ssh.sudo_password in "
        f"the cluster spec names, or allow {user} to use sudo without a password (NOPASSWD).",
    )


def sudo_refused(target: HostTarget, stderr: str, exit_status: int | None) -> SudoRefused:
    """sudo failed for another reason than the password: not installed, or no rule.

    :param stderr: sudo's, with the password already masked.
    """
    user = target.user
    if exit_status == 127:
        why = f"sudo is not installed there ({stderr_tail(stderr, 1)}); install it"
    else:
        said = " ".join(stderr_tail(stderr, 3).split()).rstrip(".") or f"exit {exit_status}"
        why = (
            f"sudo refused to run commands as root for {user} ({said}); give {user} a "
            "sudoers rule for all commands"
        )
    return SudoRefused(
        target.name,
        f"host {target.label}: {why}, or log in as root (ssh.user in the cluster spec).",
    )
