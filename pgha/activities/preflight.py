"""Preflight activity: gather one host's facts over SSH and judge them. Read-only."""

from __future__ import annotations

import asyncio

from temporalio import activity

from pgha.activities.common import heartbeating, open_host
from pgha.checks.preflight import HostCheckInput, HostFacts, HostReport, evaluate, release_urls
from pgha.hosts.facts import apt, system
from pgha.hosts.host import Host


async def gather_facts(host: Host, inp: HostCheckInput) -> HostFacts:
    """Everything preflight needs from one host, fetched concurrently."""
    os_rel, cpus, mem, init = await asyncio.gather(
        system.os_release(host),
        system.cpu_count(host),
        system.memory(host),
        system.init_system(host),
    )
    clock, listeners, sources = await asyncio.gather(
        system.time_sync(host),
        system.listening_ports(host),
        apt.apt_sources(host),
    )
    disks = await asyncio.gather(*(system.disk_free(host, p) for p in inp.disk_paths))
    units = sorted({c.unit for c in inp.ports if c.unit})
    active = await host.run(["systemctl", "is-active", *units], check=False) if units else None
    states = active.stdout.split() if active else []
    urls = release_urls(
        inp.package_source,
        os_rel.codename,
        inp.postgres_version,
        inp.mirror,
        [(s.uri, s.suite) for s in sources],
    )
    reach = await asyncio.gather(
        *(apt.url_reachable(host, u, env_proxy=inp.apt_proxy) for u in urls)
    )
    return HostFacts(
        os_id=os_rel.id,
        os_version=os_rel.version_id,
        os_codename=os_rel.codename,
        os_pretty=os_rel.pretty_name,
        cpus=cpus,
        memory_mb=mem.total_mb,
        disks={d.path: d.free_gb for d in disks},
        pid1=init.pid1,
        systemd_state=init.state,
        time_synchronized=clock.synchronized,
        time_detail=clock.detail,
        busy_ports={lst.port: lst.process or "?" for lst in listeners},
        active_units=[u for u, st in zip(units, states, strict=False) if st == "active"],
        source_urls=urls,
        source_errors={u: r.detail for u, r in zip(urls, reach, strict=True) if not r.reachable},
    )


@activity.defn(name="preflight.check_host")
async def check_host(inp: HostCheckInput) -> HostReport:
    """SSH to the host, gather facts, judge them. Idempotent and read-only."""
    async with heartbeating(), open_host(inp.target) as host:
        facts = await gather_facts(host, inp)
    return HostReport(
        host=inp.target.name,
        address=inp.target.address,
        roles=inp.roles,
        facts=facts,
        findings=evaluate(inp, facts),
    )
