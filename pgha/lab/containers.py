"""Lab containers and the lab network in docker: create, inspect, start, kill, remove.

One container per lab host; knows docker flags, not the layout or the spec.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from pgha.errors import LabError
from pgha.lab.docker import docker, docker_failed, inspect
from pgha.lab.layout import SUBNET_ENV, LabHostPlan
from pgha.lab.state import HOST_KEY, public_key_from_tar
from pgha.models import Model

NETWORK = "pgha-lab"
#: The Linux bridge's name on this machine, so `ip addr` shows whose it is (max 15 chars).
BRIDGE = "pgha-lab0"
LABEL = "pgha.lab"
PREFIX = "pgha-lab-"
#: dockerd here refuses more than 20000 open files per container; a fixed limit also
#: makes HAProxy's maxconn checks behave the same on every machine.
NOFILE = "20000:20000"

#: systemd as PID 1 without --privileged (which fails here: CAP_SYS_RESOURCE is not in
#: this VM's bounding set). /run must be a tmpfs for systemd; cgroups are shared rw
#: because the engine runs cgroup v1.
SYSTEMD_FLAGS = (
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
)  # fmt: skip


class Container(Model):
    """What docker says about one lab container."""

    host: str
    container: str
    address: str
    image: str
    #: docker's state: created, running, paused, restarting, exited, dead.
    state: str


def container_name(host: str) -> str:
    return f"{PREFIX}{host}"


def _container(data: dict[str, Any]) -> Container:
    labels = data["Config"].get("Labels") or {}
    name = data["Name"].lstrip("/")
    return Container(
        host=labels.get(f"{LABEL}.host") or name.removeprefix(PREFIX),
        container=name,
        address=labels.get(f"{LABEL}.address", ""),
        image=data["Config"]["Image"],
        state=data["State"]["Status"],
    )


async def list_containers() -> list[Container]:
    """Every container labeled as a lab host, running or not."""
    ids = (await docker("ps", "-a", "-q", "--filter", f"label={LABEL}=1")).text.split()
    if not ids:
        return []
    data = json.loads((await docker("inspect", "--type", "container", *ids)).stdout)
    return [_container(d) for d in data]


async def get_container(host: str) -> Container | None:
    data = await inspect("container", container_name(host))
    return _container(data) if data else None


async def ensure_network(subnet: ipaddress.IPv4Network, in_use: bool) -> bool:
    """Create the lab's bridge network with ``subnet`` unless it exists. Idempotent.

    :param in_use: lab containers exist (a network with another subnet cannot be replaced).
    :returns: True when the network was created.
    :raises LabError: the network exists with another subnet while in use, or docker
        refused the subnet (it overlaps another network).
    """
    data = await inspect("network", NETWORK)
    if data is not None:
        current = [c.get("Subnet") for c in (data.get("IPAM") or {}).get("Config") or []]
        if str(subnet) in current:
            return False
        if in_use:
            raise LabError(
                f"docker network {NETWORK} has subnet {', '.join(map(str, current))} but the "
                f"lab now wants {subnet} ({SUBNET_ENV}); run `pgha lab down` first, then "
                "`pgha lab up` again"
            )
        await docker("network", "rm", NETWORK)
    result = await docker(
        "network", "create", "--driver", "bridge", "--subnet", str(subnet),
        "--label", f"{LABEL}=1", "-o", f"com.docker.network.bridge.name={BRIDGE}", NETWORK,
        check=False,
    )  # fmt: skip
    if not result.ok:
        err = docker_failed(result)
        if "overlap" in result.stderr:
            raise LabError(f"{err}\nChoose a free subnet with {SUBNET_ENV}, e.g. 10.78.0.0/24.")
        raise err
    return True


async def remove_network() -> bool:
    """Remove the lab network. Idempotent: returns False when there was none."""
    if await inspect("network", NETWORK) is None:
        return False
    await docker("network", "rm", NETWORK)
    return True


async def create_container(plan: LabHostPlan, image: str, identity: bytes) -> None:
    """Create, give its identity (host key, machine-id, authorized_keys), and start.

    The identity goes in with `docker cp` before the first boot, so sshd never starts
    without its key and nothing has to run inside the container to set it up.
    """
    name = container_name(plan.name)
    await docker(
        "create", "--name", name, "--hostname", plan.name,
        "--network", NETWORK, "--ip", str(plan.address),
        "--label", f"{LABEL}=1", "--label", f"{LABEL}.host={plan.name}",
        "--label", f"{LABEL}.address={plan.address}",
        *SYSTEMD_FLAGS, "--ulimit", f"nofile={NOFILE}",
        image,
    )  # fmt: skip
    await docker("cp", "-", f"{name}:/", input=identity)
    await docker("start", name)


async def remove_container(host: str) -> None:
    """Remove a lab container, running or not (its disk goes with it)."""
    result = await docker("rm", "-f", container_name(host), check=False)
    if not result.ok and "No such container" not in result.stderr:
        raise docker_failed(result)


async def start_container(host: str) -> None:
    await docker("start", container_name(host))


async def unpause_container(host: str) -> None:
    await docker("unpause", container_name(host))


async def kill_container(host: str) -> None:
    """SIGKILL to the container's systemd: every process dies at once, nothing is flushed
    or shut down, and peers see no FIN or RST. Like pulling a server's power plug."""
    await docker("kill", container_name(host))


async def read_host_key(host: str) -> str | None:
    """The container's SSH host public key line, read out of band (works when stopped)."""
    result = await docker("cp", f"{container_name(host)}:/{HOST_KEY}.pub", "-", check=False)
    return public_key_from_tar(result.stdout) if result.ok else None
