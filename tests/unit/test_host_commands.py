"""The pure parts of the host layer (quoting, masking, sudo wrapping) and the FakeHost."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import SecretStr

from pgha.errors import CommandFailed
from pgha.hosts.host import Host, _known_hosts_name, mask, render_command, stderr_tail
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


def host(**target: Any) -> Host:
    return Host(HostTarget(name="db1", address="10.0.0.11", **target), conn=object())  # type: ignore[arg-type]


def test_host_wrap_root_runs_line_unchanged() -> None:
    assert host(sudo=True)._wrap("id -u") == "id -u"


def test_host_wrap_sudo_user_without_password_uses_sudo_n() -> None:
    assert host(user="deploy", sudo=True)._wrap("echo 'x'") == (
        "sudo -n -- sh -c 'echo '\"'\"'x'\"'\"''"
    )


def test_host_wrap_sudo_user_with_password_reads_it_from_stdin() -> None:
    h = Host(
        HostTarget(name="db1", address="10.0.0.11", user="deploy", sudo=True),
        conn=object(),  # type: ignore[arg-type]
        sudo_password=SecretStr("pw"),
    )
    assert h._wrap("true") == "sudo -S -p '' -- sh -c true"


def test_known_hosts_name_other_port_is_bracketed() -> None:
    assert _known_hosts_name(HostTarget(name="a", address="10.0.0.1")) == "10.0.0.1"
    assert _known_hosts_name(HostTarget(name="a", address="10.0.0.1", port=2222)) == (
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
