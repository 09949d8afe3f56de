"""Renders keepalived's config and its HAProxy check for Debian's keepalived 2.2.7. Pure: no I/O.

Debian's keepalived.service runs ``keepalived --dont-fork`` (Type=notify, reload on SIGHUP)
only when /etc/keepalived/keepalived.conf is not empty.
"""

from __future__ import annotations

from pgha.render._common import header, host_with_role, render
from pgha.render.files import RenderedFile
from pgha.render.secrets import RenderSecrets
from pgha.spec import ClusterSpec, Role

KEEPALIVED_CONFIG_PATH = "/etc/keepalived/keepalived.conf"
CHECK_SCRIPT_PATH = "/etc/keepalived/pgha-check-haproxy"
#: VRRP priority of the first proxy; each next one in spec order gets 10 less.
TOP_PRIORITY = 150


def keepalived_priority(spec: ClusterSpec, host: str) -> int:
    """Higher for earlier proxies in the spec: the first proxy takes the VIP on a cold start."""
    names = [h.name for h in spec.hosts_with(Role.haproxy)]
    return max(1, TOP_PRIORITY - 10 * names.index(host))


def keepalived_check_script(spec: ClusterSpec) -> RenderedFile:
    """The check keepalived runs every second on each proxy: is the local HAProxy serving?

    A TCP connect to the local stats listener: it is up only when the HAProxy worker runs
    and has bound all its listeners. The read-write port is not probed: each probe would
    open a session to the primary (a log line there every second). Root-owned and not
    writable by others, as keepalived's script security demands.
    """
    content = render(
        "keepalived-check-haproxy.sh.j2", header=header(spec), stats_port=spec.haproxy.stats_port
    )
    return RenderedFile(path=CHECK_SCRIPT_PATH, content=content, mode=0o755)


def keepalived_conf(spec: ClusterSpec, host: str, secrets: RenderSecrets) -> RenderedFile:
    """/etc/keepalived/keepalived.conf for proxy ``host``. Idempotent. Needs keepalived_auth.

    All proxies start as BACKUP with ``nopreempt``; the highest priority (first in the
    spec) wins the first election. A proxy whose HAProxy check fails goes to FAULT (script
    weight 0), which releases the VIP at once (it sends a priority-0 advert); when it
    recovers it does not take the VIP back, so one HAProxy failure moves client sessions
    once, not twice. (With weight-based demotion, nopreempt would keep the VIP on the
    failing proxy, because a higher priority never preempts.)

    :raises ValueError: the host is not a proxy, or the spec has no VIP.
    :raises MissingSecretError: keepalived_auth was not resolved.
    """
    me = host_with_role(spec, host, Role.haproxy)
    if spec.vip is None:
        raise ValueError("keepalived.conf needs vip in the spec")
    peers = [str(h.address) for h in spec.hosts_with(Role.haproxy) if h.name != me.name]
    content = render(
        "keepalived.conf.j2",
        header=header(spec),
        name=me.name,
        instance=f"pgha_{spec.cluster.replace('-', '_')}",
        interface=spec.vip.interface,
        router_id=spec.vip.virtual_router_id,
        priority=keepalived_priority(spec, me.name),
        src_ip=str(me.address),
        peers=peers,
        auth_pass=secrets.need("keepalived_auth"),
        vip=str(spec.vip.address),
        check_script=CHECK_SCRIPT_PATH,
    )
    return RenderedFile(path=KEEPALIVED_CONFIG_PATH, content=content, mode=0o640)
