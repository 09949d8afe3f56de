"""Converge one etcd member: its env file, a one-time bootstrap guarded by a marker, the unit.

Never wipes a data directory that carries pgha's marker, and never bootstraps twice: a
member whose marker names this cluster's token only gets its env file converged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from pgha.errors import HostError
from pgha.hosts.facts import etcd as facts
from pgha.hosts.facts.etcd import DEBIAN_DEFAULT_DATA_DIR, ETCD_UNIT, LocalState
from pgha.hosts.host import Host, render_command
from pgha.hosts.ops.etcd_membership import (
    EtcdMembershipRefused,
    hand_off_leadership,
    only_initial_settings_differ,
)
from pgha.hosts.ops.files import ensure_file
from pgha.hosts.result import Outcome

#: How long a bootstrapping member waits for its cluster to become healthy. Every member
#: of a static bootstrap must start before any is healthy; past this the op fails
#: transiently (the activity is retried and resumes the wait).
HEALTHY_WITHIN_S = 120.0
POLL_S = 1.0


class EtcdMemberConflict(HostError):
    """The host's etcd belongs to something else: another cluster token, settings pgha did
    not write, or a member that lost its data. Permanent: an operator must decide."""


class EtcdNotHealthy(HostError):
    """The member did not become healthy in time. Transient: retry resumes the wait."""


class MemberPlan(BaseModel):
    """What one etcd member should be. Plain values: the hosts layer knows no spec."""

    model_config = ConfigDict(frozen=True)

    name: str
    #: This member's own client URL (its address, not loopback): the package's throw-away
    #: etcd answers on loopback only, so health here proves the real member is up.
    client_url: str
    data_dir: str
    env_path: str
    env_content: str = Field(repr=False)
    #: The first line of every file pgha writes for this cluster.
    managed_header: str
    token: str

    @property
    def marker_path(self) -> str:
        return marker_path(self.data_dir)


def marker_path(data_dir: str) -> str:
    """pgha's bootstrap marker, beside the data directory: etcd warns about any unknown
    file inside it, and a marker that outlives a deleted data dir reveals the loss."""
    return f"{data_dir.rstrip('/')}.pgha-token"


async def wait_healthy(host: Host, client_url: str, within_s: float = HEALTHY_WITHIN_S) -> None:
    """Wait until the member at ``client_url`` answers health (which needs a quorum).

    :raises EtcdNotHealthy: not healthy within ``within_s``.
    """
    deadline = time.monotonic() + within_s
    while True:
        (h,) = await facts.health(host, [client_url])
        if h.healthy:
            return
        if time.monotonic() > deadline:
            raise EtcdNotHealthy(
                host.name,
                f"host {host.name} ({host.address}): etcd at {client_url} is not healthy after "
                f"{within_s:g} s ({h.error or 'no quorum'}). Every member must be started for "
                "the cluster to form; see `journalctl -u etcd` on the members. Retrying "
                "resumes the wait.",
            )
        await asyncio.sleep(POLL_S)


def _conflict(host: Host, plan: MemberPlan, state: LocalState) -> str | None:
    """Why pgha must not touch this member, or None. Pure."""
    where = f"host {host.name} ({host.address})"
    if state.marker and state.marker != plan.token:
        return (
            f"{where}: {plan.data_dir} is a member of etcd cluster {state.marker!r}, but this "
            f"run bootstraps {plan.token!r}. pgha never re-bootstraps a member: re-run so the "
            f"cluster's token is read from the members, or move {plan.data_dir} and "
            f"{plan.marker_path} aside to rebuild this member from scratch"
        )
    if state.marker and state.data_dir != "initialized":
        return (
            f"{where}: {plan.marker_path} says this member joined etcd cluster "
            f"{state.marker!r}, but {plan.data_dir} holds no member data ({state.data_dir}): "
            "its data was removed. Replace the member (`etcdctl member remove` then "
            f"`member add`), or remove {plan.marker_path} if the whole cluster is rebuilt"
        )
    if state.env == "foreign":
        return (
            f"{where}: /etc/default/etcd holds settings pgha did not write (its first line "
            "is not pgha's header): this etcd may serve something else. Move the file aside "
            "if the host is pgha's, or use another host for the etcd role"
        )
    if not state.marker and state.data_dir == "other":
        return (
            f"{where}: {plan.data_dir} holds files but no etcd member data. Move it aside so "
            "pgha can bootstrap this member there"
        )
    return None


async def _start(host: Host, state: LocalState, *, restart: bool) -> list[list[str]]:
    """Start (or restart) without waiting: with Type=notify, a member of a cluster without
    quorum stays "activating" until enough members run, so a blocking start of the first
    member would wait for the others forever."""
    todo: list[list[str]] = []
    if restart:
        todo.append(["systemctl", "restart", "--no-block", ETCD_UNIT])
    elif state.unit.active_state not in ("active", "activating", "reloading"):
        todo.append(["systemctl", "start", "--no-block", ETCD_UNIT])
    if not state.unit.enabled and state.unit.enableable:
        todo.append(["systemctl", "enable", ETCD_UNIT])
    await host.run_all(todo)
    return todo


async def ensure_member(
    host: Host, plan: MemberPlan, *, within_s: float = HEALTHY_WITHIN_S
) -> Outcome:
    """Make ``host`` a running member of the etcd cluster with ``plan.token``.

    Idempotent. With pgha's marker for this token: converges the env file only, restarting
    the member when it changed (one member; the others keep the quorum), and starts or
    enables the unit when needed. Without a marker (first bootstrap, or one that was
    interrupted): stops the package's throw-away etcd, removes its data, removes data of an
    unconfirmed bootstrap with another token, writes the env file, starts without blocking,
    waits for the member to be healthy, then writes the marker. Every member of a new
    cluster must run this concurrently.

    :raises EtcdMemberConflict: the member belongs to another token, lost its data, or
        /etc/default/etcd holds someone else's settings (permanent).
    :raises EtcdNotHealthy: no quorum within ``within_s`` (transient; safe to retry).
    """
    state = await facts.local_state(
        host, data_dir=plan.data_dir, marker_path=plan.marker_path, env_path=plan.env_path,
        managed_header=plan.managed_header,
    )  # fmt: skip
    problem = _conflict(host, plan, state)
    if problem:
        raise EtcdMemberConflict(host.name, problem)
    if state.marker == plan.token:
        return await _converge_member(host, plan, state, within_s)
    return await _bootstrap_once(host, plan, state, within_s)


async def _converge_member(
    host: Host, plan: MemberPlan, state: LocalState, within_s: float
) -> Outcome:
    before = await host.run(["cat", plan.env_path], check=False, label="read etcd env")
    env = await ensure_file(host, plan.env_path, plan.env_content, mode=0o644)
    running = state.unit.active_state in ("active", "activating", "reloading")
    # A membership change rewrites ETCD_INITIAL_CLUSTER on every member; etcd reads it only
    # to bootstrap, and restarting every member for it would risk the quorum for nothing.
    settings_changed = env.changed and not only_initial_settings_differ(
        before.stdout, plan.env_content
    )
    todo = await _start(host, state, restart=settings_changed and running)
    if not env.changed and not todo:
        return Outcome.unchanged(
            f"etcd member {plan.name} of cluster {plan.token}: {plan.env_path} is current and "
            "etcd is running and enabled"
        )
    await wait_healthy(host, plan.client_url, within_s)
    done = [env.summary] if env.changed else []
    if any("restart" in c for c in todo):
        done.append(f"restarted etcd on {plan.name} (only this member) for the new settings")
    elif todo:
        done.append("started/enabled etcd")
    return Outcome.made(
        f"etcd member {plan.name}: " + "; ".join(done),
        [*env.commands, *(render_command(c) for c in todo)],
    )


async def _bootstrap_once(
    host: Host, plan: MemberPlan, state: LocalState, within_s: float
) -> Outcome:
    """First start of this member in a new cluster; resumes an interrupted one."""
    # Data initialised by an earlier attempt with this very token (pgha wrote the env
    # file before starting etcd) is that same bootstrap, interrupted: keep it and resume.
    # Data from another token never reached a healthy cluster (else a member would carry
    # its marker and the workflow would pass that token): it holds nothing and must go,
    # or this member would come back in that stillborn cluster.
    resume = (
        state.data_dir == "initialized" and state.env == "pgha" and (state.env_token == plan.token)
    )
    commands: list[str] = []
    did: list[str] = []
    running = state.unit.active_state in ("active", "activating", "reloading")
    if not resume:
        cleanup: list[list[str]] = []
        if running:
            cleanup.append(["systemctl", "stop", ETCD_UNIT])
        if state.default_dir != "absent" and state.env in ("absent", "stock", "pgha"):
            # The package's throw-away single-member cluster: pgha never uses it.
            cleanup.append(["rm", "-rf", "--", DEBIAN_DEFAULT_DATA_DIR])
            did.append(f"removed the package's default data ({DEBIAN_DEFAULT_DATA_DIR})")
        if state.data_dir == "initialized":
            cleanup.append(["rm", "-rf", "--", plan.data_dir])
            did.append(f"removed {plan.data_dir} of an unfinished bootstrap")
        await host.run_all(cleanup)
        commands += [render_command(c) for c in cleanup]
        if running:
            state = state.model_copy(
                update={"unit": state.unit.model_copy(update={"active_state": "inactive"})}
            )
    env = await ensure_file(host, plan.env_path, plan.env_content, mode=0o644)
    commands += env.commands
    started = await _start(host, state, restart=resume and env.changed and running)
    commands += [render_command(c) for c in started]
    await wait_healthy(host, plan.client_url, within_s)
    marker = await ensure_file(host, plan.marker_path, plan.token + "\n", mode=0o644)
    commands += marker.commands
    how = "resumed the bootstrap of" if resume else "bootstrapped"
    return Outcome.made(
        f"{how} etcd member {plan.name} in cluster {plan.token}"
        + (f" ({'; '.join(did)})" if did else ""),
        commands,
    )


async def read_member(host: Host, plan: MemberPlan) -> dict[str, object]:
    """The facts a workflow needs before bootstrapping: the recorded token ("" when this
    member was never confirmed in a cluster), health, and whether the cluster lists this
    member by name and peer URL. Read-only."""
    state = await facts.local_state(
        host, data_dir=plan.data_dir, marker_path=plan.marker_path, env_path=plan.env_path,
        managed_header=plan.managed_header,
    )  # fmt: skip
    if state.env != "pgha":
        # No member of ours can run without pgha's env file: skip etcdctl, whose dial
        # timeout to a closed port would cost seconds per bare host.
        return {"token": state.marker, "healthy": False, "member_of_cluster": False}
    (h,), members = await asyncio.gather(
        facts.health(host, [plan.client_url]), facts.member_list(host, [plan.client_url])
    )
    listed = any(m.name == plan.name for m in members or [])
    return {"token": state.marker, "healthy": h.healthy, "member_of_cluster": listed}


async def restart_member(host: Host, endpoints: Sequence[str], name: str) -> Outcome:
    """Restart etcd on ``host`` (the member ``name``) without costing the quorum: refused
    unless every member is healthy, leadership handed off first when it leads, then
    `systemctl restart` and a wait until every member answers healthy again. The running
    version afterwards is in the summary.

    :raises EtcdMembershipRefused: a member is unhealthy (one more down could cost the
        quorum), or ``name`` is not a member.
    :raises EtcdNotHealthy: the cluster was not healthy again in time.
    """
    members = await facts.member_list(host, endpoints) or []
    me = next((m for m in members if m.name == name), None)
    if me is None:
        raise EtcdMembershipRefused(host.name, f"{name} is not in the etcd member list")
    sick = [h.endpoint for h in await facts.health(host, endpoints) if not h.healthy]
    if sick:
        raise EtcdMembershipRefused(host.name, f"etcd members not healthy: {', '.join(sick)}; "
                                    "a restart now could cost the quorum")  # fmt: skip
    moved = await hand_off_leadership(host, members, me)
    restart = ["systemctl", "restart", ETCD_UNIT]
    await host.run(restart, label="systemctl restart etcd", timeout=120)
    for url in endpoints:
        await wait_healthy(host, url)
    version = await facts.server_version(host, me.client_urls)
    said = f"{moved.summary}; " if moved else ""
    return Outcome.made(f"{said}restarted etcd on {name}: it runs {version or '?'}, every "
                        "member healthy", [*(moved.commands if moved else []),
                                           render_command(restart)])  # fmt: skip
