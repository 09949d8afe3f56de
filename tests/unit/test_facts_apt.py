"""Apt facts: sources files and apt-helper output recorded on Debian bookworm."""

from __future__ import annotations

from pgha.hosts.facts.apt import apt_sources, parse_apt_sources, parse_url_check, url_reachable
from tests.unit.fakes import FakeHost, data


def pairs(stdout: str) -> list[tuple[str, str, str, str]]:
    return [(s.file.rsplit("/", 1)[-1], s.type, s.uri, s.suite) for s in parse_apt_sources(stdout)]


def test_parse_apt_sources_deb822_with_comments_gives_one_entry_per_suite() -> None:
    sources = parse_apt_sources(data("apt_sources_deb822.txt"))
    assert [(s.uri, s.suite, s.components) for s in sources] == [
        ("http://deb.debian.org/debian", "bookworm", ["main"]),
        ("http://deb.debian.org/debian", "bookworm-updates", ["main"]),
        ("http://deb.debian.org/debian-security", "bookworm-security", ["main"]),
    ]
    assert {s.file for s in sources} == {"/etc/apt/sources.list.d/debian.sources"}


def test_parse_apt_sources_mixed_formats_skip_comments_and_disabled() -> None:
    assert pairs(data("apt_sources_mixed.txt")) == [
        ("sources.list", "deb", "http://deb.debian.org/debian", "bookworm"),
        ("extra.list", "deb", "http://apt.postgresql.org/pub/repos/apt", "bookworm-pgdg"),
        ("extra.list", "deb-src", "http://deb.debian.org/debian", "bookworm"),
        ("flat.sources", "deb", "http://repo.example.invalid/flat/", "./"),
        ("multi.sources", "deb", "http://deb.debian.org/debian", "bookworm-updates"),
        ("multi.sources", "deb", "http://ftp.de.debian.org/debian", "bookworm-updates"),
        ("multi.sources", "deb-src", "http://deb.debian.org/debian", "bookworm-updates"),
        ("multi.sources", "deb-src", "http://ftp.de.debian.org/debian", "bookworm-updates"),
    ]


def test_parse_apt_sources_one_line_options_keep_components() -> None:
    pgdg = parse_apt_sources(data("apt_sources_mixed.txt"))[1]
    assert pgdg.components == ["main", "15"]


def test_parse_apt_sources_nothing_configured_is_empty() -> None:
    assert parse_apt_sources("") == []


async def test_apt_sources_runs_one_command() -> None:
    host = FakeHost().on("apt-config shell", data("apt_sources_deb822.txt"))
    assert len(await apt_sources(host)) == 3
    assert len(host.commands) == 1


def recorded(name: str) -> tuple[str, int, str]:
    url, code, output = data(f"apt_helper_{name}.txt").split("\n", 2)
    return url, int(code), output


def test_parse_url_check_fetched_is_reachable() -> None:
    url, code, out = recorded("ok")
    check = parse_url_check(url, code, out, 10)
    assert check.reachable and check.detail.startswith("Fetched 151 kB")


def test_parse_url_check_refused_gives_apt_error_without_url() -> None:
    url, code, out = recorded("refused")
    check = parse_url_check(url, code, out, 10)
    assert not check.reachable
    assert check.detail == (
        "Could not connect to 127.0.0.1:1 (127.0.0.1). - connect (111: Connection refused)"
    )


def test_parse_url_check_404_says_not_found() -> None:
    url, code, out = recorded("not_found")
    assert parse_url_check(url, code, out, 10).detail == "404  Not Found [IP: 203.0.113.80 80]"


def test_parse_url_check_unresolvable_says_could_not_resolve() -> None:
    url, code, out = recorded("unresolvable")
    assert parse_url_check(url, code, out, 10).detail == "Could not resolve 'nosuch.invalid'"


def test_parse_url_check_timeout_exit_124_says_no_answer() -> None:
    check = parse_url_check("http://x/", 124, "Get:1 http://x/\n", 7)
    assert not check.reachable and check.detail == "no complete answer within 7 s"


def test_parse_url_check_no_apt_helper_reports_shell_error() -> None:
    out = "timeout: failed to run command '/usr/lib/apt/apt-helper': No such file or directory\n"
    check = parse_url_check("http://x/", 127, out, 10)
    assert not check.reachable and check.detail == out.strip()


async def test_url_reachable_passes_timeout_and_masks_proxy_password() -> None:
    url, code, out = recorded("refused")
    host = FakeHost().on("apt-helper", out, exit_code=code)
    check = await url_reachable(host, url, 5, env_proxy="http://u:pw@proxy:3142")
    assert not check.reachable
    (call,) = host.calls
    assert call.command.endswith(f" pgha-url-check {url} 5 http://u:********@proxy:3142")
    assert call.timeout == 35
    assert [s.get_secret_value() for s in call.secrets] == ["pw"]
