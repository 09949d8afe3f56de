"""Converge keepalived on a proxy host (check script, validated config, running unit) and
watch which proxy holds the VIP. Never restarts keepalived: a restart drops the VIP.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Sequence

from pydantic import SecretStr

from pgha.errors import HostError
from pgha.hosts.facts import keepalived as facts
from pgha.hosts.facts.haproxy import ConfigCheck
from pgha.hosts.host import Host
from pgha.hosts.ops.files import ensure_file
from pgha.hosts.ops.haproxy import ensure_service, ensure_service_file
from pgha.hosts.result import Outcome, combine
from pgha.render.files import RenderedFile

KEEPALIVED_UNIT = "keepalived"
#: How often the VIP's holder is looked up while waiting for it.
POLL_S = 0.5


class VipNotSettled(HostError):
    """No proxy, or more than one, holds the VIP after the wait. Transient: keepalived may
    still be electing (a retry waits again); the message names every proxy's view."""


async def ensure_keepalived(
    host: Host, script: RenderedFile, config: RenderedFile, secrets: Sequence[SecretStr] = ()
) -> Outcome:
    """The HAProxy check script, keepalived.conf (checked by `keepalived -t` first), and
    keepalived running and enabled; reloaded (SIGHUP, the VIP stays) when the config changed.
    Idempotent: a converged host runs only reads.

    :param secrets: values in the config (the VRRP password) to mask in keepalived's
        messages.
    :raises ConfigRejected: keepalived refused the rendered config; the running one was kept.
    :raises ProgramMissing: keepalived is not installed.
    :raises ServiceFailed: keepalived did not start or reload.
    """
    # The script first: the config names it, and with enable_script_security keepalived
    # (and `-t`) disables a check whose script is missing or writable by others. A new
    # script needs no reload: keepalived runs the file anew every interval.
    wrote_script = await ensure_file(
        host, script.path, script.content, mode=script.mode, owner=script.owner, group=script.group
    )

    async def check(h: Host, path: str) -> ConfigCheck:
        return await facts.check_config(h, path, secrets=secrets)

    wrote_config = await ensure_service_file(
        host, config, unit=KEEPALIVED_UNIT, check=check, program="keepalived -t"
    )
    running = await ensure_service(host, KEEPALIVED_UNIT)
    return combine(wrote_script, wrote_config, running)


async def holds_vip(host: Host, vip: ipaddress.IPv4Address) -> bool:
    """Whether ``vip`` is configured on one of the host's interfaces. Read-only."""
    return facts.holds(await facts.addresses(host), vip)


async def wait_single_holder(
    hosts: Sequence[Host], vip: ipaddress.IPv4Address, within: float
) -> list[str]:
    """Wait (bounded) until exactly one of ``hosts`` holds ``vip``. Read-only.

    keepalived elects within a few adverts (1 s each) once its check passed twice, so a
    VIP that is missing right after a start is normal for a few seconds.

    :returns: the holder's name, in a one-element list.
    :raises VipNotSettled: none or several hold it at the end of the wait.
    """
    deadline = time.monotonic() + within
    while True:
        held = await asyncio.gather(*(holds_vip(h, vip) for h in hosts))
        holders = [h.name for h, yes in zip(hosts, held, strict=True) if yes]
        if len(holders) == 1:
            return holders
        if time.monotonic() > deadline:
            seen = ", ".join(
                f"{h.name} ({h.address}) {'holds it' if yes else 'does not'}"
                for h, yes in zip(hosts, held, strict=True)
            )
            what = "no proxy holds" if not holders else f"{len(holders)} proxies hold"
            hint = (
                "Is keepalived running and its HAProxy check passing there (`journalctl -u "
                "keepalived`)? VRRP between the proxies may be blocked (IP protocol 112)."
                if not holders
                else "Several masters means the proxies do not hear each other's VRRP "
                "adverts (IP protocol 112 blocked, different auth or virtual_router_id)."
            )
            raise VipNotSettled(
                hosts[0].name,
                f"{what} the VIP {vip} after {within:g} s: {seen}. {hint}",
            )
        await asyncio.sleep(POLL_S)
