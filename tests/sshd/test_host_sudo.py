"""sudo against a real sshd and a real sudo: throw-away NOPASSWD and password users."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from pgha.errors import PERMANENT_HOST_ERRORS, CommandFailed, SudoRefused
from pgha.hosts.host import connect
from pgha.hosts.ops import files
from tests.sshd.conftest import SudoUsers

pytestmark = pytest.mark.sshd

INPUT = "first line\nsecond line\n"


async def test_sudo_nopasswd_with_password_configured_stdin_is_exactly_the_input(
    sudo_users: SudoUsers,
) -> None:
    # The password is configured but sudo never asks for it: it must not reach the command.
    async with connect(sudo_users.nopasswd, sudo_password=sudo_users.secret) as host:
        who = await host.run(["id", "-u"])
        got = await host.run(["cat"], input=INPUT)
        empty = await host.run(["cat"], timeout=10)
    assert who.stdout == "0\n"
    assert got.stdout == INPUT
    assert empty.stdout == ""


async def test_sudo_nopasswd_ensure_file_writes_exactly_the_content(
    sudo_users: SudoUsers, tmp_path: Path
) -> None:
    path = Path("/tmp", f"pgha-sudo-{os.urandom(4).hex()}.conf")
    try:
        async with connect(sudo_users.nopasswd, sudo_password=sudo_users.secret) as host:
            out = await files.ensure_file(host, str(path), "a = 1\n", mode=0o600)
        assert out.changed
        assert path.read_text() == "a = 1\n"
        assert path.owner() == "root"
    finally:
        path.unlink(missing_ok=True)


async def test_sudo_password_runs_as_root_and_stdin_is_exactly_the_input(
    sudo_users: SudoUsers,
) -> None:
    async with connect(sudo_users.password, sudo_password=sudo_users.secret) as host:
        who = await host.run(["id", "-u"])
        got = await host.run(["cat"], input=INPUT)
        again = await host.run(["cat"], input=INPUT)  # password already accepted: same
        empty = await host.run(["cat"], timeout=10)
    assert who.stdout == "0\n"
    assert got.stdout == again.stdout == INPUT
    assert empty.stdout == ""


async def test_sudo_password_never_appears_in_command_failed(sudo_users: SudoUsers) -> None:
    pw = sudo_users.secret.get_secret_value()
    async with connect(sudo_users.password, sudo_password=sudo_users.secret) as host:
        with pytest.raises(CommandFailed) as echoed:
            await host.run(f"echo 'it is {pw}' >&2; exit 3")
        with pytest.raises(CommandFailed) as on_stdout:
            await host.run(f"echo {pw}; exit 4")
        with pytest.raises(CommandFailed) as stdin:
            await host.run("cat >&2; exit 5", input="data\n")
    for err in (echoed.value, on_stdout.value, stdin.value):
        assert pw not in str(err)
        assert pw not in err.command and pw not in err.stderr_tail
    assert echoed.value.stderr_tail == "it is ********"
    assert on_stdout.value.stderr_tail == "********"
    assert stdin.value.stderr_tail == "data"  # exactly the input: no password line


async def test_sudo_password_not_configured_raises_sudo_refused_saying_what_to_set(
    sudo_users: SudoUsers,
) -> None:
    target = sudo_users.password
    async with connect(target) as host:
        with pytest.raises(SudoRefused) as caught:
            await host.run(["true"])
    msg = str(caught.value)
    assert caught.value.host == "pw"
    assert msg.startswith(f"host pw (127.0.0.1): sudo asks user {target.user} for a password")
    assert "ssh.sudo_password" in msg and "NOPASSWD" in msg
    assert isinstance(caught.value, PERMANENT_HOST_ERRORS)


async def test_sudo_wrong_password_raises_sudo_refused_and_masks_it(
    sudo_users: SudoUsers,
) -> None:
    wrong = SecretStr("not-the-password")
    target = sudo_users.password
    async with connect(target, sudo_password=wrong) as host:
        with pytest.raises(SudoRefused) as caught:
            await host.run(["cat"], input="must not be tried as a password\n")
    msg = str(caught.value)
    assert msg.startswith(f"host pw (127.0.0.1): sudo rejected the password of user {target.user}")
    assert "ssh.sudo_password" in msg
    assert "not-the-password" not in msg and "must not be tried" not in msg


async def test_sudo_right_password_after_wrong_one_works_on_same_connection(
    sudo_users: SudoUsers,
) -> None:
    target = sudo_users.password
    async with connect(target, sudo_password=SecretStr("wrong")) as host:
        with pytest.raises(SudoRefused):
            await host.run(["true"])
    async with connect(target, sudo_password=sudo_users.secret) as host:
        assert (await host.run(["cat"], input=INPUT)).stdout == INPUT


async def test_sudo_user_without_rule_raises_sudo_refused_quoting_sudo(
    sudo_users: SudoUsers,
) -> None:
    target = sudo_users.norule
    async with connect(target, sudo_password=sudo_users.secret) as host:
        with pytest.raises(SudoRefused) as caught:
            await host.run(["true"])
    assert str(caught.value) == (
        f"host norule (127.0.0.1): sudo refused to run commands as root for {target.user} "
        f"({target.user} is not in the sudoers file); give {target.user} a sudoers rule "
        "for all commands, or log in as root (ssh.user in the cluster spec)."
    )
