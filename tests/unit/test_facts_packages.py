"""Package facts: dpkg-query output recorded on Debian bookworm."""

from __future__ import annotations

import pytest

from pgha.errors import CommandFailed
from pgha.hosts.facts.packages import installed_packages, parse_dpkg_query
from tests.unit.fakes import FakeHost, data


def test_parse_dpkg_query_installed_and_unknown_maps_versions() -> None:
    assert parse_dpkg_query(data("dpkg_query_mixed.txt")) == {
        "bash": "5.2.15-2+b8",
        "libc6-amd64": None,  # known to dpkg ("un"), not installed
        "openssh-server": "1:9.2p1-2+deb12u10",
    }


def test_parse_dpkg_query_removed_with_config_left_is_not_installed() -> None:
    found = parse_dpkg_query(data("dpkg_query_removed_config_left.txt"))
    assert found["chrony"] is None
    assert found["systemd"] == "252.39-1~deb12u2"


def test_parse_dpkg_query_multiarch_installed_line_wins() -> None:
    out = "libssl3\t\tun \nlibssl3\t3.0.19-1~deb12u2\tii \nlibfoo\t1.0\tiU \n"
    assert parse_dpkg_query(out) == {"libssl3": "3.0.19-1~deb12u2", "libfoo": None}


async def test_installed_packages_unknown_name_exit_1_is_an_answer() -> None:
    host = FakeHost().on(
        "dpkg-query",
        data("dpkg_query_mixed.txt"),
        stderr=data("dpkg_query_mixed_stderr.txt"),
        exit_code=1,
    )
    found = await installed_packages(host, ["openssh-server", "nosuchpkg-pgha", "bash:amd64"])
    assert found == {
        "openssh-server": "1:9.2p1-2+deb12u10",
        "nosuchpkg-pgha": None,
        "bash:amd64": "5.2.15-2+b8",
    }
    assert host.commands == [
        "dpkg-query -W '--showformat=${Package}\\t${Version}\\t${db:Status-Abbrev}\\n' -- "
        "bash nosuchpkg-pgha openssh-server"
    ]


async def test_installed_packages_other_failure_raises_command_failed() -> None:
    host = FakeHost().on(
        "dpkg-query",
        stderr="dpkg-query: error: parsing file '/var/lib/dpkg/status' near line 7",
        exit_code=2,
    )
    with pytest.raises(CommandFailed, match="parsing file") as caught:
        await installed_packages(host, ["bash"])
    assert caught.value.exit_code == 2 and caught.value.host == "db1"


async def test_installed_packages_exit_1_with_other_error_raises_command_failed() -> None:
    host = FakeHost().on(
        "dpkg-query", stderr="dpkg-query: error: cannot access archive", exit_code=1
    )
    with pytest.raises(CommandFailed):
        await installed_packages(host, ["bash"])


async def test_installed_packages_glob_name_raises_value_error() -> None:
    host = FakeHost()
    with pytest.raises(ValueError, match="not a Debian package name"):
        await installed_packages(host, ["libc6*"])
    assert host.commands == []


async def test_installed_packages_no_names_runs_nothing() -> None:
    host = FakeHost()
    assert await installed_packages(host, []) == {}
    assert host.commands == []
