"""ensure_unit and daemon_reload on a FakeHost fed recorded `systemctl show` output."""

from __future__ import annotations

import pytest

from pgha.errors import CommandFailed
from pgha.hosts.ops.systemd import daemon_reload, ensure_unit
from tests.unit.fakes import FakeHost, data

SHOW = "systemctl show"


def host_with(state: str) -> FakeHost:
    return FakeHost().on(SHOW, data(f"systemctl_show_{state}.txt")).on("systemctl ")


def changes(host: FakeHost) -> list[str]:
    return [c for c in host.commands if not c.startswith(SHOW)]


async def test_ensure_unit_running_is_noop() -> None:
    host = host_with("running")
    out = await ensure_unit(host, "ssh", running=True, enabled=True)
    assert not out.changed
    assert out.summary == "ssh is running and enabled"
    assert changes(host) == []


async def test_ensure_unit_stopped_disabled_starts_then_enables() -> None:
    host = host_with("stopped_disabled")
    out = await ensure_unit(host, "ssh", running=True, enabled=True)
    assert out.changed and out.summary == "ssh: started, enabled"
    assert changes(host) == ["systemctl start ssh", "systemctl enable ssh"]
    assert out.commands == changes(host)


async def test_ensure_unit_enabled_but_stopped_only_starts() -> None:
    host = host_with("inactive_enabled")
    out = await ensure_unit(host, "chrony", running=True, enabled=True)
    assert changes(host) == ["systemctl start chrony"]
    assert out.summary == "chrony: started"


async def test_ensure_unit_failed_unit_is_started() -> None:
    host = host_with("failed")
    await ensure_unit(host, "pgha-fail", running=True, enabled=False)
    assert changes(host) == ["systemctl start pgha-fail"]


async def test_ensure_unit_running_never_restarts() -> None:
    host = host_with("running")
    await ensure_unit(host, "ssh", running=True, enabled=False)
    assert changes(host) == ["systemctl disable ssh"]
    assert not any("restart" in c for c in host.commands)


async def test_ensure_unit_running_but_unwanted_stops_then_disables() -> None:
    host = host_with("running")
    out = await ensure_unit(host, "ssh", running=False, enabled=False)
    assert changes(host) == ["systemctl stop ssh", "systemctl disable ssh"]
    assert out.summary == "ssh: stopped, disabled"


async def test_ensure_unit_stopped_and_disabled_is_noop() -> None:
    host = host_with("stopped_disabled")
    out = await ensure_unit(host, "ssh", running=False, enabled=False)
    assert not out.changed and out.summary == "ssh is stopped and disabled"
    assert changes(host) == []


async def test_ensure_unit_failed_and_unwanted_is_noop() -> None:
    host = host_with("failed")
    out = await ensure_unit(host, "pgha-fail", running=False, enabled=False)
    assert not out.changed and changes(host) == []


async def test_ensure_unit_enabled_runtime_disables_runtime_links() -> None:
    host = host_with("enabled_runtime")
    await ensure_unit(host, "ssh", running=False, enabled=False)
    assert changes(host) == ["systemctl disable --runtime ssh"]


async def test_ensure_unit_enabled_runtime_wanted_enables_persistently() -> None:
    host = host_with("enabled_runtime")
    await ensure_unit(host, "ssh", running=False, enabled=True)
    assert changes(host) == ["systemctl enable ssh"]


async def test_ensure_unit_static_has_nothing_to_enable() -> None:
    host = host_with("static")
    out = await ensure_unit(host, "systemd-journald", running=True, enabled=True)
    assert not out.changed and changes(host) == []
    assert out.summary == (
        "systemd-journald is running; it is static, so there is nothing to enable"
    )


async def test_ensure_unit_not_installed_and_unwanted_is_noop() -> None:
    host = host_with("not_found")
    out = await ensure_unit(host, "nosuch-pgha", running=False, enabled=False)
    assert not out.changed
    assert out.summary == "nosuch-pgha is not installed, so it is neither running nor enabled"
    assert changes(host) == []


async def test_ensure_unit_masked_start_raises_command_failed() -> None:
    host = (
        FakeHost()
        .on(SHOW, data("systemctl_show_masked.txt"))
        .on(
            "systemctl start",
            stderr="Failed to start chrony.service: Unit chrony.service is masked.",
            exit_code=1,
        )
    )
    with pytest.raises(CommandFailed, match="is masked"):
        await ensure_unit(host, "chrony", running=True, enabled=True)
    assert changes(host) == ["systemctl start chrony"]  # stops at the first failure


async def test_daemon_reload_units_unchanged_is_noop() -> None:
    host = host_with("running")
    out = await daemon_reload(host, ["ssh"])
    assert not out.changed
    assert out.summary == "systemd has already loaded the current unit files of ssh"
    assert changes(host) == []


async def test_daemon_reload_changed_unit_file_reloads() -> None:
    host = host_with("need_reload")
    out = await daemon_reload(host, ["pgha-fail"])
    assert out.changed and out.commands == ["systemctl daemon-reload"]
    assert "pgha-fail" in out.summary


async def test_daemon_reload_without_units_always_reloads() -> None:
    host = FakeHost().on("systemctl daemon-reload")
    out = await daemon_reload(host)
    assert out.changed and host.commands == ["systemctl daemon-reload"]


async def test_daemon_reload_single_unit_string_is_one_unit() -> None:
    host = host_with("running")
    await daemon_reload(host, "ssh")
    assert host.commands == [
        "systemctl show -p Id,LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload ssh"
    ]
