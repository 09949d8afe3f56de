"""Converge files and directories: content, mode, owner. Never restarts or reloads anything.

The caller restarts or reloads a service when an Outcome here says ``changed``.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import shlex

from pgha.hosts.facts.files import FileState, file_state
from pgha.hosts.host import Host, render_command
from pgha.hosts.result import Outcome

_ACCOUNT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")


def _check(mode: int, owner: str, group: str) -> None:
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"not a file mode: {mode:o}")
    for name in (owner, group):
        if not _ACCOUNT.match(name):
            raise ValueError(f"not a user or group name: {name!r}")


def _owned(state: FileState, owner: str, group: str) -> bool:
    """Compare by meaning: a numeric owner or group matches the id as well as the name."""
    return owner in (state.owner, str(state.uid)) and group in (state.group, str(state.gid))


def _fix_metadata(
    state: FileState, path: str, mode: int, owner: str, group: str
) -> list[list[str]]:
    todo: list[list[str]] = []
    # chown first: it clears setuid/setgid bits, which the chmod after it sets again.
    if not _owned(state, owner, group):
        todo.append(["chown", f"{owner}:{group}", path])
    if state.mode != mode or (todo and mode & 0o6000):
        todo.append(["chmod", f"{mode:04o}", path])
    return todo


def write_command(path: str, *, mode: int, owner: str, group: str, decode: bool) -> str:
    """The shell line that replaces ``path`` atomically with what arrives on stdin.

    The temporary file sits in the same directory, so `mv` is a rename(2): readers see the
    old file or the new one, never a partial one. umask 077 keeps the content private
    until chmod. ``mv -T`` refuses to move the file *into* a directory that has the name.
    """
    d, name = posixpath.split(path)
    tmp = shlex.quote(posixpath.join(d or ".", f".{name}.pgha-XXXXXX"))
    p = shlex.quote(path)
    fill = 'base64 -d >"$t"' if decode else 'cat >"$t"'
    return (
        f'umask 077; t=$(mktemp {tmp}) && {{ {fill} && chown {owner}:{group} "$t" && '
        f'chmod {mode:04o} "$t" && mv -fT "$t" {p} || {{ rc=$?; rm -f "$t"; exit $rc; }}; }}'
    )


async def ensure_file(
    host: Host,
    path: str,
    content: str | bytes,
    *,
    mode: int = 0o644,
    owner: str = "root",
    group: str = "root",
) -> Outcome:
    """Make ``path`` a regular file with this content, mode and owner.

    Idempotent. Compares sha256 of the content, then mode and owner: rewrites the file
    (atomically, through a temporary file and a rename) only when the content differs,
    runs only chown/chmod when only those differ, and nothing otherwise. A symlink at
    ``path`` is replaced by a file. The content travels on stdin (base64 for bytes), so it
    is never part of a logged command line.

    :param content: str is written as UTF-8.
    :raises ValueError: an impossible mode or owner.
    :raises CommandFailed: e.g. the directory does not exist (see :func:`ensure_directory`),
        a directory is in the way, or the owner is unknown on the host.
    """
    _check(mode, owner, group)
    data = content.encode() if isinstance(content, str) else content
    state = await file_state(host, path)
    if not state.exists or state.kind != "file" or state.sha256 != hashlib.sha256(data).hexdigest():
        if isinstance(content, bytes):
            payload, binary = base64.b64encode(content).decode(), True
        else:
            payload, binary = content, False
        line = write_command(path, mode=mode, owner=owner, group=group, decode=binary)
        await host.run(line, input=payload, label="write-file")
        why = "created" if not state.exists else "rewrote"
        if state.exists and state.kind != "file":
            why = f"replaced the {state.kind} at"
        return Outcome.made(
            f"{why} {path} ({len(data)} bytes, mode {mode:04o}, {owner}:{group})", [line]
        )
    todo = _fix_metadata(state, path, mode, owner, group)
    if not todo:
        return Outcome.unchanged(f"{path} already has the wanted content, mode and owner")
    await host.run_all(todo)
    return Outcome.made(
        f"{path}: content unchanged, set mode {mode:04o} and owner {owner}:{group}",
        [render_command(c) for c in todo],
    )


async def ensure_directory(
    host: Host,
    path: str,
    *,
    mode: int = 0o755,
    owner: str = "root",
    group: str = "root",
) -> Outcome:
    """Make ``path`` a directory with this mode and owner, creating missing parents.

    Idempotent. Parents that did not exist are created root-owned, mode 0755; only
    ``path`` itself gets ``mode`` and ``owner``. A symlink to a directory counts as the
    directory (mode and owner are set on its target). Never touches the content.

    :raises CommandFailed: something that is not a directory is in the way, or the owner
        is unknown on the host.
    """
    _check(mode, owner, group)
    # Follow a symlink: a data directory linked to another disk is a directory here.
    state = await file_state(host, path, follow=True)
    if not state.exists or state.kind != "directory":
        # install -d fails ("File exists") on a file in the way, and says so.
        cmd = ["install", "-d", "-m", f"{mode:04o}", "-o", owner, "-g", group, path]
        await host.run(cmd, label="mkdir")
        return Outcome.made(
            f"created directory {path} (mode {mode:04o}, {owner}:{group})", [render_command(cmd)]
        )
    todo = _fix_metadata(state, path, mode, owner, group)
    if not todo:
        return Outcome.unchanged(f"directory {path} already has the wanted mode and owner")
    await host.run_all(todo)
    return Outcome.made(
        f"directory {path}: set mode {mode:04o} and owner {owner}:{group}",
        [render_command(c) for c in todo],
    )
