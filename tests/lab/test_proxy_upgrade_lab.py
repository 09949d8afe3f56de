"""A rolling HAProxy upgrade on the provisioned lab, checked past pgha: dpkg on each proxy,
`ip addr` for the VIP, and a writer of the test's own through the VIP whose acknowledged
rows must all be there. Down to bookworm's 2.6.12-1+deb12u3, then up to
bookworm-security's deb12u4."""

from __future__ import annotations

import asyncio

import pytest

from pgha.operations import PROXY_UPGRADE
from pgha.rolling_models import ProxyUpgradeInput, ProxyUpgradeReport
from pgha.spec import ClusterSpec, Role
from tests.lab.backup_helpers import Lab, sh
from tests.lab.drill_helpers import Writer

pytestmark = pytest.mark.lab

OLD, NEW = "2.6.12-1+deb12u3", "2.6.12-1+deb12u4"


async def vip_holders(spec: ClusterSpec) -> list[str]:
    assert spec.vip is not None
    vip = str(spec.vip.address.ip)
    return [p.name for p in spec.hosts_with(Role.haproxy)
            if f" {vip}/" in await sh(p.name, "ip -o -4 addr show")]  # fmt: skip


@pytest.mark.parametrize(("version", "down"), [(OLD, True), (NEW, False)])
async def test_proxies_one_at_a_time_the_vip_holder_last(
    lab_cluster: Lab, version: str, down: bool
) -> None:
    spec = lab_cluster.spec
    holder = await vip_holders(spec)
    assert len(holder) == 1
    writer = Writer(spec)
    writing = asyncio.create_task(writer.go())
    try:
        inp = ProxyUpgradeInput(spec=spec, packages={"haproxy": version}, allow_downgrade=down)
        report = ProxyUpgradeReport.model_validate(await lab_cluster.run(PROXY_UPGRADE, inp))
    finally:
        writer.stop.set()
        await writing
    assert report.order[-1] == holder[0]  # the VIP holder went last
    for p in spec.hosts_with(Role.haproxy):
        assert await sh(p.name, "dpkg-query -W -f '${Version}' haproxy") == version
        assert await sh(p.name, "systemctl is-active haproxy keepalived") == "active\nactive"
    after = await vip_holders(spec)
    assert len(after) == 1 and after[0] != holder[0] == report.order[-1]  # it moved once
    assert set(writer.acked) <= await writer.present()
    assert report.cost is not None and report.cost.write_down_s < 10
