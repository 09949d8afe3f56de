"""keepalived activities: converge the VIP's keepalived on one proxy, and find which proxy
holds the VIP. Thin; the VRRP password is resolved here and never leaves the activity.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from temporalio import activity

from pgha.activities.cluster_secrets import render_secrets
from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import step_result, translated
from pgha.activities.haproxy import PERMANENT, require_role
from pgha.errors import HostError
from pgha.hosts.host import Host, connect
from pgha.hosts.ops.keepalived import ensure_keepalived, holds_vip, wait_single_holder
from pgha.render import keepalived_check_script, keepalived_conf
from pgha.render.keepalived import keepalived_priority
from pgha.spec import Role
from pgha.steps import HostStep, StepResult

#: How long check_vip waits for exactly one holder unless params["within_s"] says otherwise:
#: a cold start needs the HAProxy check to pass twice (2 s) plus an election (~3 adverts).
VIP_WAIT_S = 30.0


@activity.defn(name="keepalived.ensure_config")
async def ensure_config(inp: HostStep) -> StepResult:
    """The HAProxy check script and keepalived.conf as rendered (the config validated by
    `keepalived -t` before it replaces the live one); keepalived enabled and running;
    reloaded, never restarted, when the config changed. Idempotent.

    Facts: ``priority`` (VRRP priority of this proxy).
    """
    async with translated(*PERMANENT):
        require_role(inp, Role.haproxy)
        secrets = render_secrets(inp.spec, "keepalived_auth")
        config = keepalived_conf(inp.spec, inp.host, secrets)
        script = keepalived_check_script(inp.spec)
        auth = [secrets.keepalived_auth] if secrets.keepalived_auth else []
        async with heartbeating(), open_host(inp.target) as host:
            outcome = await ensure_keepalived(host, script, config, auth)
    return step_result(
        inp.host, [outcome], facts={"priority": keepalived_priority(inp.spec, inp.host)}
    )


@activity.defn(name="keepalived.check_vip")
async def check_vip(inp: HostStep) -> StepResult:
    """Whether this proxy holds the VIP, once exactly one proxy does. Read-only.

    Waits (bounded by ``params["within_s"]``, default 30 s, heartbeating) until exactly one
    of the reachable proxies holds ``spec.vip``; the workflow may call it on every proxy
    and gets the same holder from each. A proxy that cannot be reached (a drill stopped
    it) is left out with a warning; this host itself must be reachable.

    Facts: ``holds_vip`` (this host), ``holder`` (the one that does), ``vip``.
    :raises VipNotSettled: none or several hold it after the wait (transient: retried).
    """
    spec = inp.spec
    warnings: list[str] = []
    async with translated(*PERMANENT):
        require_role(inp, Role.haproxy)
        if spec.vip is None:
            raise ValueError("keepalived.check_vip: the spec has no vip")
        vip = spec.vip.address.ip
        within = float(inp.params.get("within_s", VIP_WAIT_S))
        async with heartbeating(), AsyncExitStack() as stack:
            me = await stack.enter_async_context(open_host(inp.target))
            hosts: list[Host] = [me]
            for peer in spec.hosts_with(Role.haproxy):
                if peer.name == inp.host:
                    continue
                try:
                    other = await stack.enter_async_context(connect(spec.target(peer.name)))
                    await holds_vip(other, vip)  # reachable now, not just a pooled socket
                except HostError as err:
                    warnings.append(f"{peer.name} ({peer.address}) left out: {err}")
                    continue
                hosts.append(other)
            holders = await wait_single_holder(hosts, vip, within)
    holder = holders[0]
    mine = holder == inp.host
    return StepResult(
        host=inp.host,
        changed=False,
        summary=f"{'this proxy holds' if mine else f'{holder} holds'} the VIP {vip}",
        warnings=warnings,
        facts={"holds_vip": mine, "holder": holder, "vip": str(vip)},
    )
