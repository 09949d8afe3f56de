"""The pure parts of the host layer (quoting, masking, remote command lines) and the FakeHost."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
from pydantic import SecretStr

from pgha.errors import CommandFailed
from pgha.hosts.commandline import (
    SUDO_NOPASSWD,
    SUDO_PASSWORD,
    mask,
    remote_command,
    render_command,
    stderr_tail,
    stop_command,
)
from pgha.hosts.connections import known_hosts_name
from pgha.hosts.host import Host
from pgha.models import HostTarget
from tests.unit.fakes import FakeHost


def test_render_command_list_is_quoted_word_by_word() -> None:
    assert render_command(["echo", "a b", "it's", "$X"]) == "echo 'a b' 'it'\"'\"'s' '$X'"


def test_render_command_string_is_passed_as_is() -> None:
    assert render_command("echo $HOME | wc -c") == "echo $HOME | wc -c"


def test_mask_secret_values_are_replaced_and_empty_ignored() -> None:
    text = "PGPASSWORD=pw1 psql -c 'alter role x password pw2'"
    masked = mask(text, [SecretStr("pw1"), SecretStr("pw2"), SecretStr("")])
    assert masked == "PGPASSWORD=******** psql -c 'alter role x password ********'"


def test_stderr_tail_long_output_keeps_last_lines() -> None:
    text = "\n".join(f"l{i}" for i in range(1, 31)) + "\n\n"
    assert stderr_tail(text, 3) == "l28\nl29\nl30"


def test_remote_command_runs_line_under_sh_inside_timeout_with_tag() -> None:
    assert remote_command("echo 'x' | wc -c", "pgha-run:ab12") == (
        "timeout -k 5s 0s sh -c 'echo '\"'\"'x'\"'\"' | wc -c' sh pgha-run:ab12"
    )


def test_remote_command_with_limit_and_sudo_puts_timeout_inside_sudo() -> None:
    # timeout runs as root, so it can signal and kill the root command it watches.
    assert remote_command("true", "pgha-run:1", 2.5, SUDO_PASSWORD) == (
        "sudo -S -k -p '' -- timeout -k 5s 2.500s sh -c true sh pgha-run:1"
    )
    assert remote_command("true", "pgha-run:1", 0.0001, SUDO_NOPASSWD).startswith(
        "sudo -n -- timeout -k 5s 0.001s sh"  # never 0s, which would mean no limit
    )


def test_stop_command_pattern_matches_the_wrapper_but_not_itself() -> None:
    stop = stop_command("pgha-run:ab12", SUDO_NOPASSWD)
    assert stop == "sudo -n -- pkill -TERM -f '^timeout .*pgha-run[:]ab12$'"
    pattern = re.compile(shlex.split(stop)[-1])
    assert pattern.search(remote_command("sleep 9", "pgha-run:ab12"))
    assert not pattern.search(stop)
    assert not pattern.search(f"sh -c {shlex.quote(stop)}")
    assert not pattern.search(remote_command("sleep 9", "pgha-run:ab123"))


def host(**target: Any) -> Host:
    return Host(HostTarget(name="db1", address="10.0.0.11", **target), conn=object())  # type: ignore[arg-type]


async def test_host_sudo_root_needs_no_sudo() -> None:
    assert not host(sudo=True).needs_sudo
    assert await host(sudo=True)._sudo() == ("", "")
    assert await host(user="deploy")._sudo() == ("", "")


async def test_run_nonpositive_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        await host().run("true", timeout=0)


def test_known_hosts_name_other_port_is_bracketed() -> None:
    assert known_hosts_name(HostTarget(name="a", address="10.0.0.1")) == "10.0.0.1"
    assert known_hosts_name(HostTarget(name="a", address="10.0.0.1", port=2222)) == (
        "'[10.0.0.1]:2222'"
    )


async def test_fake_host_unscripted_command_fails_the_test() -> None:
    with pytest.raises(AssertionError, match="no scripted answer for: rm -rf /x"):
        await FakeHost().run(["rm", "-rf", "/x"])


async def test_fake_host_times_rule_falls_through_to_next() -> None:
    h = FakeHost().on("systemctl show", "first", times=1).on(re.compile(r"^systemctl "), "then")
    assert [(await h.run("systemctl show x")).stdout for _ in range(2)] == ["first", "then"]


async def test_fake_host_failure_raises_command_failed_like_host() -> None:
    h = FakeHost().on("false", stdout="secret-1 leaked", exit_code=1)
    with pytest.raises(CommandFailed) as caught:
        await h.run("false secret-1", secrets=[SecretStr("secret-1")])
    assert str(caught.value) == "host db1 (10.0.0.11): `false ********` exited 1:\n******** leaked"
    assert h.commands == ["false ********"]
