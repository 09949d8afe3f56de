"""Read-only activities behind `pgha status`: each asks one part of the live cluster.

Each reads over SSH what the component itself reports (Patroni's REST API, etcdctl,
HAProxy's stats, ip addr, pgbackrest info), so status works wherever the worker can SSH,
with no extra ports opened to the worker.
"""

from __future__ import annotations

import asyncio
import shlex

from temporalio import activity

from pgha.activities.common import open_host
from pgha.checks.status import (
    parse_etcd,
    parse_haproxy_csv,
    parse_patroni_cluster,
    parse_pgbackrest_info,
)
from pgha.hosts.facts.http import http_get as get_on_host
from pgha.hosts.host import Host
from pgha.render.etcd import etcd_client_urls
from pgha.status_models import BackupStatus, EtcdStatus, PatroniStatus, ProxyStatus
from pgha.steps import HostStep

#: Every status read is bounded: status must answer in seconds, even with a part down.
READ_TIMEOUT_S = 8


async def http_get(host: Host, url: str) -> str:
    """GET ``url`` from the host itself (pgha.hosts.facts.http: bash, no curl needed)."""
    return await get_on_host(host, url, READ_TIMEOUT_S)


@activity.defn(name="status.patroni")
async def patroni_status(step: HostStep) -> PatroniStatus:
    """Members with role, state, timeline and lag, from Patroni's REST API on ``step.host``."""
    spec = step.spec
    address = spec.host(step.host).address
    async with open_host(step.target) as host:
        text = await http_get(host, f"http://{address}:{spec.patroni.restapi_port}/cluster")
    return parse_patroni_cluster(text, step.host)


@activity.defn(name="status.etcd")
async def etcd_status(step: HostStep) -> EtcdStatus:
    """Health, version and leader of every etcd member, asked from ``step.host``."""
    endpoints = ",".join(etcd_client_urls(step.spec))
    base = ["etcdctl", f"--endpoints={endpoints}", "--command-timeout=3s", "-w", "json"]
    async with open_host(step.target) as host:
        # Both exit non-zero when a member is down, yet print what the others said.
        status, health = await asyncio.gather(
            host.run([*base, "endpoint", "status"], check=False, timeout=READ_TIMEOUT_S,
                     label="etcdctl"),
            host.run([*base, "endpoint", "health"], check=False, timeout=READ_TIMEOUT_S,
                     label="etcdctl"),
        )  # fmt: skip
    if not status.stdout.strip() and not health.stdout.strip():
        raise RuntimeError(f"etcdctl on {step.host}: {status.stderr.strip() or health.stderr}")
    return parse_etcd(status.stdout, health.stdout)


@activity.defn(name="status.proxy")
async def proxy_status(step: HostStep) -> ProxyStatus:
    """HAProxy's view of every backend server, service states, and whether this proxy holds
    the VIP."""
    spec = step.spec
    vip = str(spec.vip.address.ip) if spec.vip else None
    async with open_host(step.target) as host:
        stats, addrs, units = await asyncio.gather(
            http_get(host, f"http://127.0.0.1:{spec.haproxy.stats_port}/;csv"),
            host.run(["ip", "-o", "-4", "addr", "show"], timeout=READ_TIMEOUT_S),
            host.run(["systemctl", "is-active", "haproxy", "keepalived"], check=False,
                     timeout=READ_TIMEOUT_S),
        )  # fmt: skip
    states = [*units.stdout.split(), "unknown", "unknown"][:2]
    holds = vip is not None and any(f" {vip}/" in line for line in addrs.stdout.splitlines())
    return ProxyStatus(
        host=step.host,
        holds_vip=holds,
        haproxy=states[0],
        keepalived=states[1],
        backends=parse_haproxy_csv(stats),
    )


@activity.defn(name="status.backups")
async def backup_status(step: HostStep) -> BackupStatus:
    """Backup sets of the cluster's stanza, from the repository host."""
    stanza = step.spec.stanza
    cmd = f"pgbackrest --stanza={shlex.quote(stanza)} --output=json info"
    async with open_host(step.target) as host:
        out = await host.run(["runuser", "-u", "postgres", "--", "sh", "-c", cmd],
                             timeout=READ_TIMEOUT_S * 2, label="pgbackrest")  # fmt: skip
    return parse_pgbackrest_info(out.stdout, stanza)
