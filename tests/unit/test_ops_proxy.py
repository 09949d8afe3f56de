"""HAProxy and keepalived facts and ops on a FakeHost: validate before install, reload never
restart, crash-safe pending reloads, VIP holder parsing and waiting.

The outputs marked "recorded" were taken on the lab (pgha-lab-proxy1: bookworm, haproxy
2.6.12, keepalived 2.2.7) by running the fact's own command.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

import pytest
from pydantic import SecretStr

from pgha.hosts.facts.haproxy import ProgramMissing, parse_haproxy_check
from pgha.hosts.facts.keepalived import holds, parse_ip_addr, parse_keepalived_check
from pgha.hosts.ops.haproxy import (
    ConfigRejected,
    ServiceFailed,
    candidate_path,
    ensure_haproxy,
    ensure_service,
    ensure_service_file,
    pending_marker,
    wait_listening,
)
from pgha.hosts.ops.keepalived import VipNotSettled, ensure_keepalived, wait_single_holder
from pgha.render.files import RenderedFile
from tests.unit.fakes import FakeHost, Rule

CFG = "/etc/haproxy/haproxy.cfg"
CANDIDATE = "/etc/haproxy/.haproxy.cfg.pgha-candidate"
NEW = "global\n    maxconn 100\n"
OLD = "global\n    maxconn 50\n"

# Recorded: `haproxy -c -f /tmp/bad.cfg 2>&1` (exit 1) on a file with two mistakes.
HAPROXY_BAD = """\
[NOTICE]   (4470) : haproxy version is 2.6.12-1+deb12u4
[NOTICE]   (4470) : path to executable is /usr/sbin/haproxy
[ALERT]    (4470) : config : parsing [/tmp/bad.cfg:2] : unknown keyword 'bogus_kw' in 'global' section
[ALERT]    (4470) : config : parsing [/tmp/bad.cfg:4] : 'bind' : invalid port '99999'
[ALERT]    (4470) : config : Error(s) found in configuration file : /tmp/bad.cfg
[ALERT]    (4470) : config : Fatal errors found in configuration.
"""  # noqa: E501
# Recorded: `keepalived -t -f /tmp/k.conf 2>&1` (exit 5).
KEEPALIVED_BAD = """\
(/tmp/k.conf: Line 3) Unknown keyword 'bogus'
(/tmp/k.conf: Line 4) number '300' outside range [1, 255]
(/tmp/k.conf: Line 4) (x): VRID '300' not valid - must be between 1 & 255
(x) the virtual router id must be set
"""
# Recorded: `ip -o -4 addr show` on pgha-lab-proxy2 while it held the VIP.
IP_ADDR_HOLDER = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
51: eth0    inet 10.77.0.22/24 brd 10.77.0.255 scope global eth0\\       valid_lft forever preferred_lft forever
51: eth0    inet 10.77.0.100/24 scope global secondary eth0\\       valid_lft forever preferred_lft forever
"""  # noqa: E501
IP_ADDR_OTHER = "\n".join(IP_ADDR_HOLDER.splitlines()[:2]) + "\n"
VIP = ipaddress.IPv4Address("10.77.0.100")


def state(content: str | None, mode: str = "644", owner: str = "root") -> str:
    """FILE_STATE_SCRIPT's output for a regular file with ``content`` (None: absent)."""
    if content is None:
        return "absent\n"
    digest = hashlib.sha256(content.encode()).hexdigest()
    return f"regular file\t{mode}\t{owner}\t{owner}\t0\t0\t{len(content)}\n{digest}  -\n"


def show(active: bool = True, enabled: bool = True, need_reload: bool = False) -> str:
    return (
        f"Id=haproxy.service\nLoadState=loaded\nActiveState={'active' if active else 'inactive'}\n"
        f"SubState={'running' if active else 'dead'}\n"
        f"UnitFileState={'enabled' if enabled else 'disabled'}\n"
        f"NeedDaemonReload={'yes' if need_reload else 'no'}\n"
    )


SS_SERVING = (
    "LISTEN 0 4000 0.0.0.0:5000 0.0.0.0:*\nLISTEN 0 4000 0.0.0.0:5001 0.0.0.0:*\n"
    "LISTEN 0 4000 0.0.0.0:7000 0.0.0.0:*\n"
)


def proxy(
    live: str | None = OLD,
    *,
    active: bool = True,
    pending: str = "",
    check_exit: int = 0,
    check_out: str = "Configuration file is valid\n",
) -> FakeHost:
    """A proxy whose haproxy.cfg holds ``live`` and whose haproxy is (not) running."""
    return (
        FakeHost("proxy1", "10.77.0.21")
        .on(f"pgha-file-state {CFG}", state(live))
        .on(f"pgha-file-state {CANDIDATE}", state(None))
        .on("mktemp")
        .on("haproxy -c -f", check_out, exit_code=check_exit)
        .on("rm -f")
        .on("mv -fT")
        .on("systemctl show", show(active=active))
        .on("-pending && echo", pending)
        .on("systemctl reload")
        .on("systemctl start")
        .on("systemctl enable")
        .on("ss -Hltnp", SS_SERVING)
        .on("journalctl", "bind failed on 0.0.0.0:5000\n")
    )


def writes(host: FakeHost) -> list[str]:
    reads = ("pgha-file-state", "systemctl show", "-pending && echo", "ss -Hltnp", "journalctl")
    return [c for c in host.commands if not any(r in c for r in reads)]


def config(content: str = NEW) -> RenderedFile:
    return RenderedFile(path=CFG, content=content)


PORTS = [5000, 5001, 7000]


# --- parsers --------------------------------------------------------------------------------


def test_parse_haproxy_check_bad_file_keeps_alerts_without_pids() -> None:
    check = parse_haproxy_check("/tmp/bad.cfg", 1, HAPROXY_BAD)
    assert not check.ok
    assert check.messages[:2] == [
        "config : parsing [/tmp/bad.cfg:2] : unknown keyword 'bogus_kw' in 'global' section",
        "config : parsing [/tmp/bad.cfg:4] : 'bind' : invalid port '99999'",
    ]


def test_parse_haproxy_check_valid_file_is_ok() -> None:
    check = parse_haproxy_check(CFG, 0, "Configuration file is valid\n")
    assert check.ok and check.messages == []


def test_parse_haproxy_check_unformatted_failure_keeps_raw_words() -> None:
    check = parse_haproxy_check(CFG, 139, "Segmentation fault\n")
    assert not check.ok and check.messages == ["Segmentation fault"]


def test_parse_keepalived_check_errors_exit_5_not_ok() -> None:
    check = parse_keepalived_check("/tmp/k.conf", 5, KEEPALIVED_BAD)
    assert not check.ok
    assert check.messages[0] == "(/tmp/k.conf: Line 3) Unknown keyword 'bogus'"


def test_parse_ip_addr_holder_lists_vip_as_secondary() -> None:
    found = parse_ip_addr(IP_ADDR_HOLDER)
    assert [(a.interface, str(a.address)) for a in found] == [
        ("lo", "127.0.0.1/8"),
        ("eth0", "10.77.0.22/24"),
        ("eth0", "10.77.0.100/24"),
    ]
    assert holds(found, VIP)
    assert not holds(parse_ip_addr(IP_ADDR_OTHER), VIP)


def test_parse_ip_addr_vlan_interface_drops_parent() -> None:
    found = parse_ip_addr("7: eth0.10@eth0    inet 10.1.0.5/24 scope global eth0.10\\ x\n")
    assert found[0].interface == "eth0.10"


# --- haproxy --------------------------------------------------------------------------------


async def test_ensure_haproxy_converged_is_noop_without_reload() -> None:
    host = proxy(live=NEW)
    out = await ensure_haproxy(host, config(), PORTS)
    assert not out.changed
    assert out.summary == (
        f"{CFG} already has the wanted content, mode and owner; haproxy is running and enabled"
    )
    assert writes(host) == []


async def test_ensure_haproxy_new_content_checks_candidate_then_reloads() -> None:
    host = proxy(live=OLD, pending="reload\n")
    out = await ensure_haproxy(host, config(), PORTS)
    assert out.changed
    assert "reloaded haproxy" in out.summary
    cmds = writes(host)
    assert "mktemp /etc/haproxy/..haproxy.cfg.pgha-candidate.pgha-XXXXXX" in cmds[0]
    assert cmds[1] == f"haproxy -c -f {CANDIDATE} 2>&1"
    assert cmds[2] == (
        f"mkdir -p /run/pgha && touch /run/pgha/haproxy.reload-pending && mv -fT {CANDIDATE} {CFG}"
    )
    assert cmds[3:] == [
        "systemctl reload haproxy",
        "rm -f /run/pgha/haproxy.restart-pending /run/pgha/haproxy.reload-pending",
    ]
    assert not any("restart haproxy" in c for c in host.commands)
    assert host.calls[0].input is None and NEW in [c.input for c in host.calls]


async def test_ensure_haproxy_rejected_config_keeps_running_one() -> None:
    host = proxy(live=OLD, check_exit=1, check_out=HAPROXY_BAD)
    with pytest.raises(ConfigRejected) as err:
        await ensure_haproxy(host, config(), PORTS)
    msg = str(err.value)
    assert "proxy1 (10.77.0.21): haproxy -c rejects the new /etc/haproxy/haproxy.cfg" in msg
    assert "the running configuration was kept" in msg
    assert "unknown keyword 'bogus_kw'" in msg
    cmds = writes(host)
    assert cmds[-1] == f"rm -f -- {CANDIDATE}"
    assert not any("mv -fT" in c and c.endswith(CFG) for c in cmds)
    assert not any(c.startswith("systemctl") for c in cmds)


async def test_ensure_haproxy_pending_reload_after_crash_reloads_unchanged_file() -> None:
    # A previous attempt installed the file and died before the reload: the marker says so.
    host = proxy(live=NEW, pending="reload\n")
    out = await ensure_haproxy(host, config(), PORTS)
    assert out.changed and out.summary == "reloaded haproxy (its configuration changed)"
    assert "systemctl reload haproxy" in writes(host)


async def test_ensure_haproxy_stopped_is_started_not_reloaded() -> None:
    host = proxy(live=OLD, active=False, pending="reload\n")
    out = await ensure_haproxy(host, config(), PORTS)
    assert out.changed
    assert "systemctl start haproxy" in writes(host)
    assert "systemctl reload haproxy" not in writes(host)


async def test_ensure_haproxy_start_failure_is_service_failed_with_log() -> None:
    host = proxy(live=NEW, active=False)
    host.rules.insert(0, Rule("systemctl start", exit_code=1, stderr="failed"))
    with pytest.raises(ServiceFailed, match=r"haproxy did not start\. The log of haproxy ends"):
        await ensure_haproxy(host, config(), PORTS)


async def test_wait_listening_port_held_by_other_process_is_service_failed() -> None:
    host = FakeHost("proxy1", "10.77.0.21").on(
        "ss -Hltnp",
        'LISTEN 0 5 0.0.0.0:5000 0.0.0.0:* users:(("postgres",pid=77,fd=3))\n',
    )
    host.on("journalctl", "")
    with pytest.raises(ServiceFailed) as err:
        await wait_listening(host, "haproxy", [5000, 5001], "haproxy", within=0)
    assert "5000 is held by postgres (pid 77); 5001 has no listener" in str(err.value)


async def test_ensure_haproxy_not_installed_is_program_missing() -> None:
    host = proxy(live=OLD, check_exit=127, check_out="sh: 1: haproxy: not found\n")
    with pytest.raises(ProgramMissing, match="haproxy is not installed"):
        await ensure_haproxy(host, config(), PORTS)


async def test_ensure_service_restart_marker_reloads_systemd_then_restarts() -> None:
    host = proxy(pending="restart\nreload\n").on("systemctl daemon-reload").on("systemctl restart")
    out = await ensure_service(host, "haproxy")
    assert writes(host) == [
        "systemctl daemon-reload",
        "systemctl restart haproxy",
        "rm -f /run/pgha/haproxy.restart-pending /run/pgha/haproxy.reload-pending",
    ]
    assert "restarted haproxy" in out.summary


async def test_ensure_service_file_without_check_marks_before_writing() -> None:
    host = proxy(live=OLD).on("touch")
    dropin = RenderedFile(path=CFG, content=NEW)
    out = await ensure_service_file(host, dropin, unit="pgbouncer", apply="restart")
    cmds = writes(host)
    assert cmds[0] == "mkdir -p /run/pgha && touch /run/pgha/pgbouncer.restart-pending"
    assert "mktemp" in cmds[1] and out.changed


def test_candidate_path_is_hidden_beside_the_live_file() -> None:
    assert candidate_path(CFG) == CANDIDATE
    assert pending_marker("keepalived") == "/run/pgha/keepalived.reload-pending"


# --- keepalived -----------------------------------------------------------------------------

KCONF = "/etc/keepalived/keepalived.conf"
KSCRIPT = "/etc/keepalived/pgha-check-haproxy"


async def test_ensure_keepalived_writes_script_before_checking_config_and_masks_secret() -> None:
    password = "s3cr3tpw"
    host = (
        FakeHost("proxy1", "10.77.0.21")
        .on(f"pgha-file-state {KSCRIPT}", state(None))
        .on(f"pgha-file-state {KCONF}", state(None))
        .on(re.compile(r"pgha-file-state .*pgha-candidate"), state(None))
        .on("mktemp")
        .on("keepalived -t", f"(Line 36) auth_pass '{password}' is odd\n", exit_code=5)
        .on("rm -f")
    )
    with pytest.raises(ConfigRejected) as err:
        await ensure_keepalived(
            host,
            RenderedFile(path=KSCRIPT, content="#!/bin/bash\n", mode=0o755),
            RenderedFile(path=KCONF, content=f"auth_pass {password}\n", mode=0o640),
            [SecretStr(password)],
        )
    assert password not in str(err.value) and "********" in str(err.value)
    cmds = writes(host)
    assert "pgha-check-haproxy" in cmds[0]  # the script is in place first
    assert cmds[2].startswith("keepalived -t -f /etc/keepalived/.keepalived.conf.pgha-candidate")


async def test_wait_single_holder_one_holder_returns_it() -> None:
    hosts = [
        FakeHost("proxy1", "10.77.0.21").on("ip -o -4 addr", IP_ADDR_OTHER),
        FakeHost("proxy2", "10.77.0.22").on("ip -o -4 addr", IP_ADDR_HOLDER),
    ]
    assert await wait_single_holder(hosts, VIP, within=0) == ["proxy2"]


async def test_wait_single_holder_none_after_bound_is_transient_error() -> None:
    hosts = [
        FakeHost("proxy1", "10.77.0.21").on("ip -o -4 addr", IP_ADDR_OTHER),
        FakeHost("proxy2", "10.77.0.22").on("ip -o -4 addr", IP_ADDR_OTHER),
    ]
    with pytest.raises(VipNotSettled, match=r"no proxy holds the VIP 10\.77\.0\.100 after 0 s"):
        await wait_single_holder(hosts, VIP, within=0)


async def test_wait_single_holder_two_holders_names_split_brain() -> None:
    hosts = [
        FakeHost("proxy1", "10.77.0.21").on("ip -o -4 addr", IP_ADDR_HOLDER),
        FakeHost("proxy2", "10.77.0.22").on("ip -o -4 addr", IP_ADDR_HOLDER),
    ]
    with pytest.raises(VipNotSettled, match="2 proxies hold"):
        await wait_single_holder(hosts, VIP, within=0)
