"""Facts about one path: existence, type, mode, owner, sha256. Read-only, one command."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from pgha.hosts.host import Host

Kind = Literal["file", "directory", "symlink", "other"]

#: One round trip. Without "follow" ($2) a symlink is described, not followed (ensure_file
#: replaces a symlink by a file). sha256 is read from stdin so odd names cannot change
#: the output format.
FILE_STATE_SCRIPT = r"""p=$1
if [ "$2" = follow ]; then s='stat -L'; [ -e "$p" ] || { echo absent; exit 0; }
else s=stat; [ -e "$p" ] || [ -L "$p" ] || { echo absent; exit 0; }; fi
$s --printf '%F\t%a\t%U\t%G\t%u\t%g\t%s\n' -- "$p" || exit
if [ -f "$p" ] && { [ "$s" != stat ] || [ ! -L "$p" ]; }; then sha256sum < "$p" || exit; fi
"""

_KINDS: dict[str, Kind] = {
    "regular file": "file",
    "regular empty file": "file",
    "directory": "directory",
    "symbolic link": "symlink",
}


class FileState(BaseModel):
    """What is at a path. All fields but ``path`` and ``exists`` are None when it is absent.

    ``mode`` holds the permission bits with setuid/setgid/sticky (``0o4755``); ``owner`` and
    ``group`` are names (``UNKNOWN`` when the id has no name), ``uid``/``gid`` the numbers.
    ``sha256`` is set for regular files only.
    """

    model_config = ConfigDict(frozen=True)

    path: str
    exists: bool
    kind: Kind | None = None
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    sha256: str | None = None


def file_state_command(path: str, *, follow: bool = False) -> list[str]:
    return ["sh", "-c", FILE_STATE_SCRIPT, "pgha-file-state", path, *(["follow"] if follow else [])]


def parse_file_state(stdout: str, path: str) -> FileState:
    """Parse the output of :data:`FILE_STATE_SCRIPT`. Pure.

    :raises ValueError: on output the script cannot produce.
    """
    lines = stdout.splitlines()
    if lines == ["absent"]:
        return FileState(path=path, exists=False)
    try:
        kind, mode, owner, group, uid, gid, size = lines[0].split("\t")
        digest = lines[1].split()[0] if len(lines) > 1 else None
        return FileState(
            path=path,
            exists=True,
            kind=_KINDS.get(kind, "other"),
            mode=int(mode, 8),
            owner=owner,
            group=group,
            uid=int(uid),
            gid=int(gid),
            size=int(size),
            sha256=digest,
        )
    except (IndexError, ValueError):
        raise ValueError(f"unexpected file state output for {path}: {stdout[:200]!r}") from None


async def file_state(host: Host, path: str, *, follow: bool = False) -> FileState:
    """What is at ``path``. Read-only.

    :param follow: describe what a symlink at ``path`` points to, instead of the link.
    :raises CommandFailed: stat or sha256sum failed (e.g. a parent directory is unreadable).
    """
    out = await host.run(file_state_command(path, follow=follow), label="file-state")
    return parse_file_state(out.stdout, path)
