"""A spare lab host outside the lab's spec, for topology tests (add-node, remove-node): its
container, its line in the lab's known_hosts, and their removal.

`pgha lab up` owns the layout and rewrites known_hosts; a spare must be removed before the
next `lab up` (which would take it for a host of a bigger layout and remove it anyway).
"""

from __future__ import annotations

from pgha.lab import containers as ct
from pgha.lab.hosts import SSH_WAIT_S, _wait_for_ssh
from pgha.lab.image import ensure_image
from pgha.lab.layout import LabHostPlan, host_offset, lab_subnet
from pgha.lab.state import (
    ensure_client_key,
    identity_tar,
    known_hosts_file,
    known_hosts_text,
    lab_lock,
    new_host_key,
    write_atomic,
)
from pgha.spec import ClusterSpec, HostSpec, Role


def _without(name: str) -> str:
    """The lab's known_hosts without ``name``'s line."""
    path = known_hosts_file()
    lines = path.read_text().splitlines() if path.exists() else []
    return "".join(ln + "\n" for ln in lines if not ln.endswith(f" pgha-lab-{name}"))


async def add_spare_host(
    spec: ClusterSpec, name: str = "db4", roles: list[Role] | None = None
) -> ClusterSpec:
    """Create (or recreate) the container of lab host ``name`` and return ``spec`` with
    that host added, with ``roles`` (postgres by default). Waits until it answers over SSH.

    :raises LabError: docker failed or the host does not answer in time.
    """
    address = lab_subnet().network_address + host_offset(name)
    roles = roles or [Role.postgres]
    plan = LabHostPlan(name=name, address=address, roles=roles)
    async with lab_lock(f"add the spare host {name}"):
        image = await ensure_image()
        await ct.remove_container(name)
        private, public = new_host_key(name)
        await ct.create_container(plan, image, identity_tar(private, public, ensure_client_key()))
        line = known_hosts_text([(str(address), public, name)])
        write_atomic(known_hosts_file(), (_without(name) + line).encode(), 0o644)
    host = HostSpec(name=name, address=address, roles=roles)
    with_spare = spec.model_copy(update={"hosts": [*spec.hosts, host]})
    await _wait_for_ssh([with_spare.target(name)], SSH_WAIT_S)
    return with_spare


async def remove_spare_host(name: str = "db4") -> None:
    """Remove the spare host's container and its known_hosts line. Idempotent."""
    async with lab_lock(f"remove the spare host {name}"):
        await ct.remove_container(name)
        write_atomic(known_hosts_file(), _without(name).encode(), 0o644)
