"""etcd activities: read a member's state, make it a member once, check the whole cluster,
change the membership, restart a member for a rolling upgrade.

Thin wrappers over pgha.hosts.ops.etcd; rendering from pgha.render. etcd holds no secret.
"""

from __future__ import annotations

from temporalio import activity

from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import param, permanent, rendering, step_result, translated
from pgha.hosts.facts import etcd as facts
from pgha.hosts.facts.packages import installed_packages
from pgha.hosts.ops import etcd as ops
from pgha.hosts.ops import etcd_membership as membership
from pgha.hosts.ops.etcd import EtcdMemberConflict, MemberPlan
from pgha.hosts.result import Outcome
from pgha.render import etcd_client_urls, etcd_data_dir, etcd_env
from pgha.render.etcd import InitialClusterState
from pgha.spec import ClusterSpec, Role
from pgha.steps import HostStep, StepResult

#: The package whose version is etcd's (etcd-client follows it).
ETCD_SERVER = "etcd-server"

#: Any valid token renders the same header and data dir; read_state needs no real one.
_NO_TOKEN = "none"


def member_plan(
    spec: ClusterSpec, host: str, token: str, state: InitialClusterState = "new"
) -> MemberPlan:
    """What member ``host`` should be. Pure.

    :param state: ``existing`` for a member joining a running cluster (etcd-add).
    :raises ValueError: the host has no role etcd, or the token is unusable.
    """
    env = etcd_env(spec, host, token=token, state=state)
    me = spec.host(host)
    return MemberPlan(
        name=me.name,
        client_url=f"http://{me.address}:{spec.etcd.client_port}",
        data_dir=etcd_data_dir(spec),
        env_path=env.path,
        env_content=env.content,
        managed_header=env.content.splitlines()[0],
        token=token,
    )


@activity.defn(name="etcd.read_state")
async def read_state(step: HostStep) -> StepResult:
    """The member's recorded cluster token ("" before its first bootstrap), health, and
    whether the cluster lists it. Read-only; idempotent.

    facts: ``token`` (str), ``healthy`` (bool), ``member_of_cluster`` (bool).
    """
    with rendering():
        plan = member_plan(step.spec, step.host, _NO_TOKEN)
    async with open_host(step.target) as host:
        found = await ops.read_member(host, plan)
    token = str(found["token"])
    summary = (f"member of etcd cluster {token}" if token else "no pgha etcd member here yet") + (
        ", healthy" if found["healthy"] else ", not healthy"
    )
    return step_result(step.host, [Outcome.unchanged(summary)], facts=found)


@activity.defn(name="etcd.ensure_member")
async def ensure_member(step: HostStep) -> StepResult:
    """Make the host a member of the cluster with ``params["token"]``: bootstrap once (all
    members must run this concurrently), afterwards only converge /etc/default/etcd
    (restarting this one member when it changed). Idempotent; heartbeats while it waits
    for the quorum, and a retry resumes an interrupted bootstrap.

    facts: ``token``.
    :raises ApplicationError: EtcdMemberConflict (non-retryable) when the host's etcd
        belongs to another cluster or lost its data; EtcdNotHealthy (retried) without a
        quorum in time.
    """
    token = param(step, "token")
    state: InitialClusterState = "existing" if step.params.get("state") == "existing" else "new"
    with rendering():
        plan = member_plan(step.spec, step.host, token, state)
    async with (
        heartbeating(),
        open_host(step.target) as host,
        translated(EtcdMemberConflict, render_errors=False),
    ):
        outcome = await ops.ensure_member(host, plan)
    return step_result(step.host, [outcome], facts={"token": token})


def membership_problems(spec: ClusterSpec, members: list[facts.Member]) -> tuple[list[str], bool]:
    """What differs between the member list and the spec's etcd hosts, and whether it can
    fix itself (members added but not started yet). Pure."""
    want = {h.name: f"http://{h.address}:{spec.etcd.peer_port}" for h in spec.hosts_with(Role.etcd)}
    problems: list[str] = []
    waiting = False
    by_peer = {u: m for m in members for u in m.peer_urls}
    for name, peer in want.items():
        m = by_peer.get(peer)
        if m is None:
            problems.append(f"{name} ({peer}) is not a member")
        elif not m.name:
            problems.append(f"{name} ({peer}) was added but has not started yet")
            waiting = True
        elif m.name != name:
            problems.append(f"{peer} is member {m.name!r}, the spec calls it {name!r}")
    for m in members:
        if not set(m.peer_urls) & set(want.values()):
            problems.append(f"{m.name or hex(m.id)} ({', '.join(m.peer_urls)}) is not in the spec")
    return problems, waiting and len(problems) == sum("not started" in p for p in problems)


@activity.defn(name="etcd.check_cluster")
async def check_cluster(step: HostStep) -> StepResult:
    """Every member healthy (v3 endpoint health) and the member list equal to the spec's etcd
    hosts, asked from ``step.host``. Read-only; idempotent.

    facts: ``leader`` (member name), ``members`` (names, spec order), ``health``
    ({name: bool}).
    :raises ApplicationError: EtcdMembership (non-retryable) when the member list holds
        members the spec does not, or lacks some.
    :raises RuntimeError: some member is unhealthy or there is no leader yet (transient: the
        workflow retries with backoff).
    """
    spec = step.spec
    names = [h.name for h in spec.hosts_with(Role.etcd)]
    urls = etcd_client_urls(spec)
    async with heartbeating(), open_host(step.target) as host:
        health = await facts.health(host, urls)
        members = await facts.member_list(host, urls)
        leader = await facts.leader_id(host, urls)
    where = f"host {step.host} ({step.target.address})"
    if members is None:
        raise RuntimeError(f"{where}: no etcd endpoint answered `member list` ({', '.join(urls)})")
    problems, transient = membership_problems(spec, members)
    if problems and not transient:
        raise permanent(
            f"{where}: the etcd member list differs from the spec: {'; '.join(problems)}. "
            "Fix the spec, or add/remove members with etcdctl (day-2 add-node/remove-node)",
            "EtcdMembership",
        )
    sick = [f"{n} ({h.endpoint}: {h.error or 'unhealthy'})"
            for n, h in zip(names, health, strict=True) if not h.healthy]  # fmt: skip
    leader_name = next((m.name for m in members if m.id == leader), "")
    if problems or sick or not leader_name:
        raise RuntimeError(
            f"{where}: etcd cluster not healthy yet: "
            + "; ".join([*problems, *(f"{s} unhealthy" for s in sick)] or ["no leader"])
        )
    return step_result(
        step.host,
        [Outcome.unchanged(f"etcd healthy: {len(names)} members, leader {leader_name}")],
        facts={
            "leader": leader_name,
            "members": names,
            "health": {n: h.healthy for n, h in zip(names, health, strict=True)},
        },
    )


def _peer_url(spec: ClusterSpec, name: str) -> str:
    return f"http://{spec.host(name).address}:{spec.etcd.peer_port}"


@activity.defn(name="etcd.add_member")
async def add_member(step: HostStep) -> StepResult:
    """`etcdctl member add` for ``params["member"]`` (its peer URL from the spec), asked
    through ``step.host``, a running member. Idempotent.

    :raises ApplicationError: EtcdMembershipRefused (non-retryable) while a member is sick.
    """
    name = param(step, "member")
    urls = [u for u in etcd_client_urls(step.spec) if u != _client_url(step.spec, name)]
    async with (
        heartbeating(),
        open_host(step.target) as host,
        translated(membership.EtcdMembershipRefused, render_errors=False),
    ):
        outcome = await membership.add_member(host, urls, name, _peer_url(step.spec, name))
    return step_result(step.host, [outcome])


@activity.defn(name="etcd.remove_member")
async def remove_member(step: HostStep) -> StepResult:
    """Remove ``params["member"]`` from the etcd cluster, asked through ``step.host``
    (another member); leadership moves away from it first. Idempotent. ``step.spec`` is
    the spec that still lists it.

    :raises ApplicationError: EtcdMembershipRefused (non-retryable): fewer than three
        members would be left, or a member is sick.
    """
    name = param(step, "member")
    async with (
        heartbeating(),
        open_host(step.target) as host,
        translated(membership.EtcdMembershipRefused, render_errors=False),
    ):
        outcome = await membership.remove_member(host, etcd_client_urls(step.spec),
                                                 _peer_url(step.spec, name))  # fmt: skip
    return step_result(step.host, [outcome])


@activity.defn(name="etcd.retire_member")
async def retire_member(step: HostStep) -> StepResult:
    """etcd stopped and disabled on ``step.host`` (removed from the cluster already), its
    data set aside, never deleted. Idempotent."""
    data = etcd_data_dir(step.spec)
    stamp = param(step, "stamp")
    async with heartbeating(), open_host(step.target) as host:
        outcome = await membership.retire(host, data, ops.marker_path(data), stamp)
    return step_result(step.host, [outcome])


def _client_url(spec: ClusterSpec, name: str) -> str:
    return f"http://{spec.host(name).address}:{spec.etcd.client_port}"


@activity.defn(name="etcd.restart_member")
async def restart_member(step: HostStep) -> StepResult:
    """Restart etcd on ``step.host`` without costing the quorum (every member healthy
    first, leadership handed off when it leads, every member healthy after), so a new
    package's binary runs. Not idempotent by design: a retry restarts once more, which is
    harmless once the cluster is healthy again.

    facts: ``running`` (the version it runs afterwards).
    :raises ApplicationError: EtcdMembershipRefused (non-retryable) while a member is sick;
        EtcdNotHealthy (non-retryable) when the cluster is not healthy again in time: the
        upgrade stops at this member.
    """
    spec = step.spec
    async with (
        heartbeating(),
        open_host(step.target) as host,
        translated(membership.EtcdMembershipRefused, ops.EtcdNotHealthy, render_errors=False),
    ):
        outcome = await ops.restart_member(host, etcd_client_urls(spec), step.host)
        running = await facts.server_version(host, [_client_url(spec, step.host)])
    return step_result(step.host, [outcome], facts={"running": running})


@activity.defn(name="etcd.member_versions")
async def member_versions(step: HostStep) -> StepResult:
    """What ``step.host``'s etcd runs (its endpoint's status) and which etcd-server package
    it has installed. Read-only.

    facts: ``running``, ``installed`` (each "" when unknown).
    """
    async with heartbeating(), open_host(step.target) as host:
        running = await facts.server_version(host, [_client_url(step.spec, step.host)])
        have = await installed_packages(host, [ETCD_SERVER])
    installed = have.get(ETCD_SERVER) or ""
    return step_result(
        step.host,
        [Outcome.unchanged(f"etcd runs {running or '?'}, {ETCD_SERVER} {installed or 'absent'}")],
        facts={"running": running, "installed": installed},
    )


@activity.defn(name="etcd.hand_off_leadership")
async def hand_off_leadership(step: HostStep) -> StepResult:
    """When ``step.host`` leads the etcd cluster, move leadership to another member and
    wait until it leads: before anything may stop etcd there (Debian's etcd-server
    package restarts it as it installs). Idempotent: a member that does not lead changes
    nothing."""
    urls = etcd_client_urls(step.spec)
    async with heartbeating(), open_host(step.target) as host:
        members = await facts.member_list(host, urls)
        me = next((m for m in members or [] if m.name == step.host), None)
        if members is None or me is None:
            raise RuntimeError(f"host {step.host}: not in the etcd member list asked through "
                               f"{', '.join(urls)}")  # fmt: skip
        moved = await membership.hand_off_leadership(host, members, me)
    return step_result(step.host, [moved or Outcome.unchanged(f"{step.host} does not lead etcd")])
