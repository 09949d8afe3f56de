"""systemd facts: `systemctl show` output recorded on Debian bookworm (systemd 252)."""

from __future__ import annotations

import pytest

from pgha.errors import CommandFailed
from pgha.hosts.facts.systemd import UnitState, parse_unit_state, show_command, unit_state
from tests.unit.fakes import FakeHost, data


def state(name: str, unit: str = "x") -> UnitState:
    return parse_unit_state(data(f"systemctl_show_{name}.txt"), unit)


def test_parse_unit_state_running_is_active_and_enabled() -> None:
    s = state("running", "ssh")
    assert (s.id, s.load_state, s.active_state, s.sub_state) == (
        "ssh.service",
        "loaded",
        "active",
        "running",
    )
    assert s.active and s.enabled and s.exists and not s.stopped
    assert not s.need_daemon_reload


def test_parse_unit_state_stopped_disabled_is_neither() -> None:
    s = state("stopped_disabled")
    assert s.stopped and not s.active and not s.enabled and s.enableable


def test_parse_unit_state_not_found_does_not_exist() -> None:
    s = state("not_found", "nosuch-pgha")
    assert not s.exists and s.unit_file_state == "" and s.stopped
    assert s.unit == "nosuch-pgha" and s.id == "nosuch-pgha.service"


def test_parse_unit_state_static_is_not_enableable() -> None:
    s = state("static")
    assert s.active and not s.enableable


def test_parse_unit_state_failed_counts_as_stopped() -> None:
    s = state("failed")
    assert s.active_state == "failed" and s.stopped and not s.active


def test_parse_unit_state_enabled_runtime_is_not_enabled() -> None:
    s = state("enabled_runtime")
    assert s.unit_file_state == "enabled-runtime" and not s.enabled


def test_parse_unit_state_masked_reports_masked() -> None:
    s = state("masked")
    assert (s.load_state, s.unit_file_state) == ("masked", "masked")


def test_parse_unit_state_changed_file_needs_daemon_reload() -> None:
    assert state("need_reload").need_daemon_reload


def test_parse_unit_state_garbage_raises_value_error() -> None:
    with pytest.raises(ValueError, match="no Id, LoadState"):
        parse_unit_state("System has not been booted with systemd", "x")


def test_show_command_option_like_name_raises_value_error() -> None:
    with pytest.raises(ValueError, match="not a systemd unit name"):
        show_command("--all")


async def test_unit_state_asks_systemctl_show_for_the_unit() -> None:
    host = FakeHost().on("systemctl show", data("systemctl_show_running.txt"))
    s = await unit_state(host, "ssh")
    assert s.active
    assert host.commands == [
        "systemctl show -p Id,LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload ssh"
    ]


async def test_unit_state_without_systemd_raises_command_failed() -> None:
    host = FakeHost().on(
        "systemctl show",
        stderr="System has not been booted with systemd as init system (PID 1). Can't operate.",
        exit_code=1,
    )
    with pytest.raises(CommandFailed, match="not been booted with systemd"):
        await unit_state(host, "ssh")
