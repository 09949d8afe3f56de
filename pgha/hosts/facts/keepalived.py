"""Facts about keepalived on a host: does a config pass `keepalived -t`, which addresses does
the host hold (the VIP among them)? Read-only.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, SecretStr

from pgha.hosts.facts.haproxy import NOT_FOUND, ConfigCheck, ProgramMissing
from pgha.hosts.host import Host, mask

#: keepalived 2.2's exit status when `-t` found errors (KEEPALIVED_EXIT_CONFIG).
CONFIG_ERRORS_EXIT = 5


class HostAddress(BaseModel):
    """One IPv4 address configured on an interface, as `ip -o -4 addr` lists it."""

    model_config = ConfigDict(frozen=True)

    interface: str
    address: ipaddress.IPv4Interface


def check_command(path: str) -> list[str]:
    # -t checks and exits; -f: the candidate, not the live file.
    return ["keepalived", "-t", "-f", path]


def parse_keepalived_check(path: str, exit_code: int, output: str) -> ConfigCheck:
    """Parse the merged output of `keepalived -t -f PATH`. Pure.

    keepalived 2.2.7 prints one line per problem ("(PATH: Line 3) Unknown keyword 'x'")
    and exits 5 when any is an error; warnings alone leave exit 0. Caveat seen on the lab:
    a *missing* file only prints "Config files missing" and exits 0, so callers check the
    file exists first (pgha always writes the candidate before checking it).
    """
    messages = [line.strip() for line in output.splitlines() if line.strip()]
    return ConfigCheck(path=path, ok=exit_code == 0, messages=messages[-20:])


async def check_config(host: Host, path: str, *, secrets: Sequence[SecretStr] = ()) -> ConfigCheck:
    """Ask the host's keepalived whether ``path`` is a valid configuration. Read-only.

    :param secrets: values in the file (the VRRP password) to mask in keepalived's words.

    :raises ProgramMissing: keepalived is not installed.
    """
    out = await host.run(
        f"{shlex.join(check_command(path))} 2>&1",
        check=False,
        label="keepalived -t",
        timeout=60,
        secrets=secrets,
    )
    if out.exit_code == NOT_FOUND:
        raise ProgramMissing(
            host.name,
            f"host {host.name} ({host.address}): keepalived is not installed; the packages "
            "step installs it (run provision again, or `apt-get install keepalived`)",
        )
    # 2>&1 put keepalived's words on stdout, which Host.run returns unmasked.
    return parse_keepalived_check(path, out.exit_code, mask(out.stdout, secrets))


def parse_ip_addr(stdout: str) -> list[HostAddress]:
    """Parse `ip -o -4 addr show` lines. Pure.

    ``43: eth0    inet 10.77.0.100/24 scope global secondary eth0\\ valid_lft ...``;
    an interface name may carry ``@parent`` (VLANs, veth), which is dropped.
    """
    found: list[HostAddress] = []
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] != "inet":
            continue
        try:
            address = ipaddress.IPv4Interface(fields[3])
        except ValueError:
            continue
        found.append(HostAddress(interface=fields[1].split("@", 1)[0], address=address))
    return found


async def addresses(host: Host) -> list[HostAddress]:
    """Every IPv4 address on the host's interfaces. Read-only."""
    out = await host.run(["ip", "-o", "-4", "addr", "show"], label="ip addr", timeout=30)
    return parse_ip_addr(out.stdout)


def holds(found: list[HostAddress], ip: ipaddress.IPv4Address) -> bool:
    """Whether ``ip`` is among the addresses (on any interface: compare by meaning, a VIP
    moved to another interface by hand is still held)."""
    return any(a.address.ip == ip for a in found)
