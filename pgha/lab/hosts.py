"""The local lab's lifecycle: up, down, status and power, over docker containers.

Reaches hosts over SSH only to check they are ready; never provisions anything on them.
"""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum
from pathlib import Path

import yaml

from pgha.errors import HostError, HostUnreachable, LabError
from pgha.hosts.host import connect
from pgha.lab import containers as ct
from pgha.lab.docker import Progress, check_engine, log_progress
from pgha.lab.image import ensure_image
from pgha.lab.layout import (
    CLUSTER,
    SPEC_HEADER,
    LabHostPlan,
    host_offset,
    host_roles,
    is_generated,
    lab_layout,
    lab_spec,
    lab_subnet,
    spec_data,
)
from pgha.lab.state import (
    ensure_client_key,
    identity_tar,
    key_file,
    known_hosts_file,
    known_hosts_text,
    lab_lock,
    new_host_key,
    write_atomic,
)
from pgha.models import HostTarget, Model
from pgha.spec import Role

SSH_WAIT_S = 60.0
#: One SSH attempt: connect (refused fast while sshd boots) plus `true`.
SSH_ATTEMPT_S = 8.0


class Action(StrEnum):
    kept = "kept"
    started = "started"
    created = "created"
    recreated = "recreated"


class LabHost(Model):
    """A lab host as docker sees it now."""

    name: str
    container: str
    address: str
    roles: list[Role]
    #: docker's container state (running, exited, created...).
    state: str
    image: str


class LabUpResult(Model):
    hosts: list[LabHost]
    #: What lab up did to each host.
    actions: dict[str, Action]
    #: Lab hosts that were removed because the layout no longer has them.
    removed: list[str]
    image: str
    spec_path: str
    key_file: str
    known_hosts: str
    seconds: float


class LabDownResult(Model):
    removed: list[str]
    network_removed: bool
    spec_removed: str | None
    #: Why the spec file was left in place, when it was.
    spec_kept: str | None


class LabPowerResult(Model):
    host: LabHost
    changed: bool


def lab_target(name: str, address: str) -> HostTarget:
    """How pgha reaches a lab host: root, the lab key, strict known_hosts."""
    return HostTarget(
        name=name,
        address=address,
        user="root",
        key_file=str(key_file()),
        known_hosts=str(known_hosts_file()),
    )


def _lab_hosts(found: list[ct.Container]) -> list[LabHost]:
    names = [c.host for c in found]

    def roles(name: str) -> list[Role]:
        try:
            return host_roles(name, names)
        except LabError:  # a labeled container with a name the layout does not know
            return []

    def order(c: ct.Container) -> tuple[int, str]:
        try:
            return host_offset(c.host), c.host
        except LabError:
            return 1000, c.host

    return [
        LabHost(name=c.host, container=c.container, address=c.address, roles=roles(c.host),
                state=c.state, image=c.image)
        for c in sorted(found, key=order)
    ]  # fmt: skip


async def lab_status() -> list[LabHost]:
    """The lab hosts that exist, in address order; empty when there is no lab. Read-only."""
    await check_engine()
    return _lab_hosts(await ct.list_containers())


def spec_path(clusters_dir: Path) -> Path:
    return clusters_dir / f"{CLUSTER}.yaml"


def _check_spec_file(path: Path) -> None:
    """Refuse to overwrite a lab.yaml somebody wrote by hand."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    if not is_generated(text):
        raise LabError(
            f"{path} exists and was not written by `pgha lab up` (its first line is not the "
            "lab's header); move it aside, then run `pgha lab up` again"
        )


async def lab_up(
    hosts: int = 6,
    clusters_dir: Path = Path("clusters"),
    *,
    progress: Progress = log_progress,
    ssh_wait_s: float = SSH_WAIT_S,
) -> LabUpResult:
    """Make the lab's hosts run and answer over SSH, and write ``clusters/lab.yaml``.

    Idempotent: running hosts with the current image keep their containers (and so their
    keys and data); stopped ones are started; missing ones are created; hosts built from an
    older image recipe are recreated; lab hosts the layout no longer has are removed.

    :param hosts: 5 (no backup host), 6 (default), 7 (adds verify1), 8-13 (adds db4..).
    :raises LabError: docker is unusable, the image cannot be built, the spec file is not
        the lab's, or a host's sshd does not accept the lab key within ``ssh_wait_s``.
    """
    started = time.monotonic()
    subnet = lab_subnet()
    plans = lab_layout(hosts, subnet)
    path = spec_path(clusters_dir)
    data = spec_data(plans, subnet, str(key_file()), str(known_hosts_file()))
    # Validate before touching docker: a layout bug must not leave a half-made lab.
    spec = lab_spec(data, str(path))
    _check_spec_file(path)
    async with lab_lock("bring the lab up"):
        await check_engine()
        client_public = ensure_client_key()
        image = await ensure_image(progress)
        existing = {c.host: c for c in await ct.list_containers()}
        if await ct.ensure_network(subnet, in_use=bool(existing)):
            progress(f"created docker network {ct.NETWORK} ({subnet})")
        wanted = {p.name for p in plans}
        removed = sorted(set(existing) - wanted, key=lambda n: (len(n), n))
        for name in removed:
            progress(f"removing {name}: a {hosts}-host lab does not have it")
        await asyncio.gather(*(ct.remove_container(n) for n in removed))
        results = await asyncio.gather(
            *(_ensure_host(p, existing.get(p.name), image, client_public) for p in plans)
        )
        actions = {p.name: action for p, (action, _) in zip(plans, results, strict=True)}
        for name, action in actions.items():
            if action is not Action.kept:
                progress(f"{name}: {action.value}")
        write_atomic(
            known_hosts_file(),
            known_hosts_text([(str(p.address), key, p.name) for p, (_, key) in
                              zip(plans, results, strict=True)]).encode(),
            0o644,
        )  # fmt: skip
        _write_spec(path, data)
        progress(f"waiting for sshd on {len(plans)} hosts (at most {ssh_wait_s:.0f} s)")
        await _wait_for_ssh([spec.target(p.name) for p in plans], ssh_wait_s)
        found = _lab_hosts(await ct.list_containers())
    return LabUpResult(
        hosts=found,
        actions=actions,
        removed=removed,
        image=image,
        spec_path=str(path),
        key_file=str(key_file()),
        known_hosts=str(known_hosts_file()),
        seconds=round(time.monotonic() - started, 1),
    )


async def _ensure_host(
    plan: LabHostPlan, have: ct.Container | None, image: str, client_public: str
) -> tuple[Action, str]:
    """Converge one host's container. :returns: what was done, and its host public key."""
    if have is not None and have.image == image and have.address == str(plan.address):
        # "created" or "dead" means an earlier lab up died mid-way: identity unknown.
        if have.state not in ("created", "dead"):
            key = await ct.read_host_key(plan.name)
            if key is not None:
                if have.state == "paused":
                    await ct.unpause_container(plan.name)
                elif have.state != "running":
                    await ct.start_container(plan.name)
                return (Action.kept if have.state == "running" else Action.started), key
    if have is not None:
        await ct.remove_container(plan.name)
    # A new container is a new machine: new host key, new machine-id.
    private, public = new_host_key(plan.name)
    await ct.create_container(plan, image, identity_tar(private, public, client_public))
    return (Action.created if have is None else Action.recreated), public


def _write_spec(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    write_atomic(path, (SPEC_HEADER + body).encode(), 0o644)


async def _wait_for_ssh(targets: list[HostTarget], within: float) -> None:
    """Wait until each host runs a command over SSH with the lab key and strict host keys.

    :raises LabError: naming every host that did not answer in time, with its last error.
    """
    deadline = time.monotonic() + within
    failures = [
        f
        for f in await asyncio.gather(*(_ssh_ready(t, deadline) for t in targets))
        if f is not None
    ]
    if failures:
        raise LabError(
            f"lab hosts did not accept SSH within {within:.0f} s:\n"
            + "\n".join(f"  - {f}" for f in failures)
            + "\nLook at `docker logs pgha-lab-<host>` and "
            "`docker exec pgha-lab-<host> journalctl -u ssh`, or rerun `pgha lab up`."
        )


async def _ssh_ready(target: HostTarget, deadline: float) -> str | None:
    """None once `true` ran over SSH; else the last error when the deadline passed."""
    last = "no attempt made"
    while True:
        try:
            async with asyncio.timeout(SSH_ATTEMPT_S):
                async with connect(target) as host:
                    await host.run(["true"], timeout=SSH_ATTEMPT_S)
            return None
        except HostUnreachable as err:
            last = str(err)  # sshd not up yet: retry
        except TimeoutError:
            last = f"host {target.label}: no answer within {SSH_ATTEMPT_S:.0f} s"
        except HostError as err:
            # A wrong host key or a refused login will not fix itself by waiting.
            return str(err)
        if time.monotonic() + 0.5 > deadline:
            return last
        await asyncio.sleep(0.5)


async def lab_down(clusters_dir: Path = Path("clusters")) -> LabDownResult:
    """Remove every lab container, the lab network, the lab's known_hosts and its spec file.

    Keeps the cached image and the client key, so the next `lab up` is fast. Idempotent.
    The spec file is removed only when `pgha lab up` wrote it.
    """
    async with lab_lock("take the lab down"):
        await check_engine()
        found = await ct.list_containers()
        await asyncio.gather(*(ct.remove_container(c.host) for c in found))
        network_removed = await ct.remove_network()
        known_hosts_file().unlink(missing_ok=True)
        path = spec_path(clusters_dir)
        spec_removed: str | None = None
        spec_kept: str | None = None
        try:
            if is_generated(path.read_text()):
                path.unlink()
                spec_removed = str(path)
            else:
                spec_kept = f"{path} was not written by `pgha lab up`; left in place"
        except FileNotFoundError:
            pass
    return LabDownResult(
        removed=sorted(c.host for c in found),
        network_removed=network_removed,
        spec_removed=spec_removed,
        spec_kept=spec_kept,
    )


async def lab_power(host: str, on: bool, *, ssh_wait_s: float = SSH_WAIT_S) -> LabPowerResult:
    """Cut or restore a lab host's power, out of band (through docker, not SSH).

    ``on=False`` is `docker kill`, not `docker stop`: a drill needs the abrupt loss of a
    machine (no clean PostgreSQL shutdown, Patroni never releases its leader key, TCP peers
    see nothing), whereas `docker stop` would shut systemd down cleanly, which is a
    planned maintenance, not a failure. ``on=True`` is `docker start` and then waits for
    sshd. Idempotent: powering off a stopped host or on a running one changes nothing.

    :raises LabError: no such lab host, docker failed, or sshd did not come back in time.
    """
    async with lab_lock(f"power {'on' if on else 'off'} {host}", wait_s=120):
        await check_engine()
        have = await ct.get_container(host)
        if have is None:
            names = ", ".join(h.name for h in _lab_hosts(await ct.list_containers())) or "none"
            raise LabError(
                f"no lab host {host!r} (lab hosts: {names}); `pgha lab status` lists them"
            )
        running = have.state in ("running", "paused", "restarting")
        changed = running != on
        if on and not running:
            await ct.start_container(host)
        elif not on and running:
            await ct.kill_container(host)
    if on:
        await _wait_for_ssh([lab_target(host, have.address)], ssh_wait_s)
    found = _lab_hosts(await ct.list_containers())
    return LabPowerResult(host=next(h for h in found if h.name == host), changed=changed)
