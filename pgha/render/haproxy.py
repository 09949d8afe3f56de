"""Renders haproxy.cfg for Debian's haproxy 2.6 on the proxy hosts. Pure: no I/O.

Debian's haproxy.service runs ``haproxy -Ws -f /etc/haproxy/haproxy.cfg`` (master-worker,
Type=notify), validates the file with ``-c`` before a reload, and creates /run/haproxy.
Every proxy gets the same file.
"""

from __future__ import annotations

from pgha.render._common import header, render
from pgha.render.files import RenderedFile
from pgha.spec import ClusterSpec, Role

HAPROXY_CONFIG_PATH = "/etc/haproxy/haproxy.cfg"


def replica_max_lag(spec: ClusterSpec) -> int:
    """Bytes a replica may lag and still serve reads: the failover bound, until the spec
    has its own setting (a replica too far behind to be promoted is too stale to read)."""
    return spec.patroni.maximum_lag_on_failover


def haproxy_cfg(spec: ClusterSpec) -> RenderedFile:
    """/etc/haproxy/haproxy.cfg, the same on every proxy. Idempotent.

    :raises ValueError: the spec has no PostgreSQL host (nothing to route to).
    """
    servers = [(h.name, str(h.address)) for h in spec.hosts_with(Role.postgres)]
    if not servers:
        raise ValueError("haproxy.cfg needs at least one host with role postgres")
    h = spec.haproxy
    content = render(
        "haproxy.cfg.j2",
        header=header(spec),
        maxconn=h.maxconn,
        rw_port=h.rw_port,
        ro_port=h.ro_port,
        stats_port=h.stats_port,
        pg_port=spec.postgres.port,
        api_port=spec.patroni.restapi_port,
        max_lag=replica_max_lag(spec),
        servers=servers,
    )
    return RenderedFile(path=HAPROXY_CONFIG_PATH, content=content, mode=0o644)
