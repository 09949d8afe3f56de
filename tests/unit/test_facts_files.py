"""File facts: the file-state script's output recorded on this kind of machine."""

from __future__ import annotations

import hashlib

import pytest

from pgha.hosts.facts.files import file_state, parse_file_state
from tests.unit.fakes import FakeHost, data


def test_parse_file_state_regular_file_has_mode_owner_and_sha256() -> None:
    s = parse_file_state(data("file_state_regular.txt"), "/tmp/fs/f")
    assert (s.exists, s.kind, s.mode, s.owner, s.group, s.uid, s.gid, s.size) == (
        True, "file", 0o644, "root", "root", 0, 0, 6,
    )  # fmt: skip
    assert s.sha256 == hashlib.sha256(b"hello\n").hexdigest()


def test_parse_file_state_empty_file_is_a_file() -> None:
    s = parse_file_state(data("file_state_empty.txt"), "/tmp/fs/empty")
    assert s.kind == "file" and s.size == 0
    assert s.sha256 == hashlib.sha256(b"").hexdigest()


def test_parse_file_state_absent_has_no_details() -> None:
    s = parse_file_state(data("file_state_absent.txt"), "/nope")
    assert not s.exists and s.kind is None and s.mode is None and s.sha256 is None


def test_parse_file_state_setgid_directory_keeps_special_bits() -> None:
    s = parse_file_state(data("file_state_directory_setgid.txt"), "/tmp/fs/d")
    assert s.kind == "directory" and s.mode == 0o2750 and s.sha256 is None


def test_parse_file_state_setuid_binary_mode_is_4755() -> None:
    assert parse_file_state(data("file_state_setuid.txt"), "/usr/bin/passwd").mode == 0o4755


def test_parse_file_state_symlink_is_not_followed() -> None:
    s = parse_file_state(data("file_state_symlink.txt"), "/tmp/fs/link")
    assert s.kind == "symlink" and s.sha256 is None


def test_parse_file_state_garbage_raises_value_error() -> None:
    with pytest.raises(ValueError, match="unexpected file state output"):
        parse_file_state("stat: cannot stat\n", "/x")


async def test_file_state_runs_one_command_with_path_as_argument() -> None:
    host = FakeHost().on("pgha-file-state", data("file_state_regular.txt"))
    s = await file_state(host, "/etc/it's here.conf")
    assert s.path == "/etc/it's here.conf"
    assert len(host.commands) == 1
    assert host.commands[0].endswith(" pgha-file-state '/etc/it'\"'\"'s here.conf'")


async def test_file_state_follow_passes_follow_flag() -> None:
    host = FakeHost().on("pgha-file-state", data("file_state_directory_setgid.txt"))
    await file_state(host, "/var/lib/postgresql", follow=True)
    assert host.commands[0].endswith(" pgha-file-state /var/lib/postgresql follow")
