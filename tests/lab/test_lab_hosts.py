"""The lab's hosts behave like separate real machines reached over SSH, and power drills work."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from pgha.errors import HostUnreachable
from pgha.hosts.host import close_all, connect
from pgha.lab.hosts import Action, LabUpResult, lab_power, lab_status, lab_up
from pgha.spec import ClusterSpec
from tests.lab.helpers import eventually

pytestmark = pytest.mark.lab


async def _run(spec: ClusterSpec, host: str, cmd: list[str]) -> str:
    async with connect(spec.target(host)) as h:
        return (await h.run(cmd, timeout=15)).stdout.strip()


async def test_every_host_answers_over_ssh_with_strict_host_keys(
    lab_spec: ClusterSpec,
) -> None:
    names = [h.name for h in lab_spec.hosts]
    got = await asyncio.gather(*(_run(lab_spec, n, ["hostname"]) for n in names))
    assert got == names


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client")
def test_openssh_client_accepts_host_key_strictly(lab_spec: ClusterSpec) -> None:
    t = lab_spec.target(lab_spec.hosts[0].name)
    out = subprocess.run(
        ["ssh", "-i", str(t.key_file), "-o", f"UserKnownHostsFile={t.known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
         "-F", "/dev/null", f"root@{t.address}", "hostname"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert (out.returncode, out.stdout.strip()) == (0, t.name), out.stderr


async def test_hosts_have_distinct_host_keys_and_machine_ids(
    lab: LabUpResult, lab_spec: ClusterSpec
) -> None:
    names = [h.name for h in lab_spec.hosts]
    machine_ids = await asyncio.gather(*(_run(lab_spec, n, ["cat", "/etc/machine-id"])
                                         for n in names))  # fmt: skip
    host_keys = await asyncio.gather(
        *(_run(lab_spec, n, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]) for n in names)
    )
    assert len(set(machine_ids)) == len(names)
    assert all(len(m) == 32 for m in machine_ids)
    assert len({k.split()[1] for k in host_keys}) == len(names)
    assert len(Path(lab.known_hosts).read_text().splitlines()) == len(names)


async def test_systemd_is_running_or_degraded_on_every_host(lab_spec: ClusterSpec) -> None:
    async def booted(name: str) -> bool:
        async with connect(lab_spec.target(name)) as h:
            out = await h.run(["systemctl", "is-system-running"], check=False, timeout=15)
        return out.stdout.strip() in ("running", "degraded")

    for h in lab_spec.hosts:
        await eventually(lambda name=h.name: booted(name), within=30)


def test_lab_image_has_no_postgresql_package(lab: LabUpResult) -> None:
    # The image, not the hosts: tests sharing the lab may have provisioned PostgreSQL on it.
    out = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "dpkg-query", lab.image,
         "-W", "-f", "${Package}\n"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    packages = out.stdout.split()
    assert "openssh-server" in packages
    assert [p for p in packages if p.startswith("postgresql")] == []


async def test_lab_up_again_keeps_every_host_and_its_key(lab: LabUpResult) -> None:
    before = Path(lab.known_hosts).read_text()
    again = await lab_up(len(lab.hosts), Path(lab.spec_path).parent)
    assert set(again.actions.values()) == {Action.kept}
    assert again.removed == []
    assert Path(lab.known_hosts).read_text() == before


async def test_status_lists_every_host_running(lab: LabUpResult) -> None:
    hosts = await lab_status()
    assert [(h.name, h.state) for h in hosts] == [(h.name, "running") for h in lab.hosts]
    assert all(h.roles for h in hosts)


async def test_power_off_cuts_ssh_and_power_on_brings_the_same_host_back(
    lab_spec: ClusterSpec,
) -> None:
    # The last host (backup1 or verify1 in the usual layouts) disturbs a shared lab least.
    name = lab_spec.hosts[-1].name
    machine_id = await _run(lab_spec, name, ["cat", "/etc/machine-id"])

    off = await lab_power(name, on=False)
    assert (off.changed, off.host.state) == (True, "exited")
    assert (await lab_power(name, on=False)).changed is False
    # Fresh connections: a pooled one to a dead host only fails at its command timeout.
    await close_all()
    # A dead host answers nothing (not even a refusal): only the connect timeout ends it.
    quick = lab_spec.target(name).model_copy(update={"connect_timeout": 3.0})
    with pytest.raises(HostUnreachable):
        async with asyncio.timeout(30), connect(quick) as h:
            await h.run(["true"], timeout=5)

    on = await asyncio.wait_for(lab_power(name, on=True), 90)
    assert (on.changed, on.host.state) == (True, "running")
    assert await _run(lab_spec, name, ["cat", "/etc/machine-id"]) == machine_id
