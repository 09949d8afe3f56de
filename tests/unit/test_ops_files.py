"""ensure_file and ensure_directory on a FakeHost fed recorded file-state output."""

from __future__ import annotations

import base64
import hashlib

import pytest

from pgha.errors import CommandFailed
from pgha.hosts.ops.files import ensure_directory, ensure_file
from tests.unit.fakes import FakeHost, data

STATE = "pgha-file-state"
WRITE = "mktemp"
HELLO = "hello\n"  # the content of the file in file_state_regular.txt (0644 root:root)


def host_with(state: str) -> FakeHost:
    return (
        FakeHost()
        .on(STATE, data(f"file_state_{state}.txt"))
        .on(WRITE)
        .on("chmod ")
        .on("chown ")
        .on("install -d")
    )


def changes(host: FakeHost) -> list[str]:
    return [c for c in host.commands if STATE not in c]


async def test_ensure_file_same_content_is_noop() -> None:
    host = host_with("regular")
    out = await ensure_file(host, "/tmp/fs/f", HELLO)
    assert not out.changed
    assert out.summary == "/tmp/fs/f already has the wanted content, mode and owner"
    assert changes(host) == []


async def test_ensure_file_absent_writes_temp_then_renames() -> None:
    host = host_with("absent")
    out = await ensure_file(host, "/etc/pgha/app.conf", "a = 1\n", mode=0o640, group="postgres")
    assert out.changed
    assert out.summary == "created /etc/pgha/app.conf (6 bytes, mode 0640, root:postgres)"
    (write,) = changes(host)
    assert write == (
        'umask 077; t=$(mktemp /etc/pgha/.app.conf.pgha-XXXXXX) && { cat >"$t" && '
        'chown root:postgres "$t" && chmod 0640 "$t" && mv -fT "$t" /etc/pgha/app.conf || '
        '{ rc=$?; rm -f "$t"; exit $rc; }; }'
    )
    assert out.commands == [write]
    assert host.calls[-1].input == "a = 1\n"  # on stdin, never on the command line


async def test_ensure_file_other_content_rewrites() -> None:
    host = host_with("regular")
    out = await ensure_file(host, "/tmp/fs/f", "bye\n")
    assert out.changed and out.summary.startswith("rewrote /tmp/fs/f")
    assert [WRITE in c for c in changes(host)] == [True]


async def test_ensure_file_only_mode_differs_runs_chmod_only() -> None:
    host = host_with("regular")
    out = await ensure_file(host, "/tmp/fs/f", HELLO, mode=0o600)
    assert changes(host) == ["chmod 0600 /tmp/fs/f"]
    assert out.changed and out.commands == ["chmod 0600 /tmp/fs/f"]
    assert out.summary == "/tmp/fs/f: content unchanged, set mode 0600 and owner root:root"


async def test_ensure_file_only_owner_differs_runs_chown_only() -> None:
    host = host_with("regular")
    await ensure_file(host, "/tmp/fs/f", HELLO, owner="postgres", group="postgres")
    assert changes(host) == ["chown postgres:postgres /tmp/fs/f"]


async def test_ensure_file_numeric_owner_matching_ids_is_noop() -> None:
    host = host_with("regular")
    out = await ensure_file(host, "/tmp/fs/f", HELLO, owner="0", group="0")
    assert not out.changed and changes(host) == []


async def test_ensure_file_setuid_owner_change_reapplies_mode_after_chown() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    host = FakeHost().on(STATE, f"regular file\t4755\troot\troot\t0\t0\t1\n{digest}  -\n")
    await ensure_file(host.on("ch"), "/usr/bin/tool", "x", mode=0o4755, owner="bin")
    # chown clears setuid, so chmod must follow it.
    assert changes(host) == ["chown bin:root /usr/bin/tool", "chmod 4755 /usr/bin/tool"]


async def test_ensure_file_bytes_go_base64_on_stdin() -> None:
    host = host_with("absent")
    blob = bytes(range(256))
    await ensure_file(host, "/var/lib/x.bin", blob)
    (write,) = changes(host)
    assert 'base64 -d >"$t"' in write
    assert base64.b64decode(host.calls[-1].input or "") == blob


async def test_ensure_file_symlink_is_replaced_by_file() -> None:
    host = host_with("symlink")
    out = await ensure_file(host, "/tmp/fs/link", HELLO)
    assert out.summary.startswith("replaced the symlink at /tmp/fs/link")
    assert "mv -fT" in changes(host)[0]


async def test_ensure_file_path_with_spaces_is_quoted() -> None:
    host = host_with("absent")
    await ensure_file(host, "/etc/my app/it's.conf", "x")
    assert "mktemp '/etc/my app/.it'\"'\"'s.conf.pgha-XXXXXX'" in changes(host)[0]
    assert changes(host)[0].endswith(
        'mv -fT "$t" \'/etc/my app/it\'"\'"\'s.conf\' || { rc=$?; rm -f "$t"; exit $rc; }; }'
    )


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"mode": 0o10000}, "not a file mode"), ({"owner": "root; rm -rf /"}, "not a user")],
)
async def test_ensure_file_bad_mode_or_owner_raises_value_error(
    kw: dict[str, object], match: str
) -> None:
    host = FakeHost()
    with pytest.raises(ValueError, match=match):
        await ensure_file(host, "/x", "x", **kw)  # type: ignore[arg-type]
    assert host.commands == []


async def test_ensure_directory_absent_creates_with_install() -> None:
    host = host_with("absent")
    out = await ensure_directory(
        host, "/var/lib/pgha/a", mode=0o700, owner="postgres", group="postgres"
    )
    assert changes(host) == ["install -d -m 0700 -o postgres -g postgres /var/lib/pgha/a"]
    assert out.summary == "created directory /var/lib/pgha/a (mode 0700, postgres:postgres)"
    assert host.commands[0].endswith(" /var/lib/pgha/a follow")


async def test_ensure_directory_same_is_noop() -> None:
    host = host_with("directory_setgid")
    out = await ensure_directory(host, "/tmp/fs/d", mode=0o2750)
    assert not out.changed
    assert out.summary == "directory /tmp/fs/d already has the wanted mode and owner"


async def test_ensure_directory_other_mode_runs_chmod_only() -> None:
    host = host_with("directory_setgid")
    out = await ensure_directory(host, "/tmp/fs/d", mode=0o750)
    assert changes(host) == ["chmod 0750 /tmp/fs/d"] and out.changed


async def test_ensure_directory_file_in_the_way_raises_command_failed() -> None:
    host = FakeHost().on(STATE, data("file_state_regular.txt"))
    host.on(
        "install -d",
        stderr="install: cannot create directory '/tmp/fs/f': File exists",
        exit_code=1,
    )
    with pytest.raises(CommandFailed, match="File exists"):
        await ensure_directory(host, "/tmp/fs/f")
    assert changes(host) == ["install -d -m 0755 -o root -g root /tmp/fs/f"]
