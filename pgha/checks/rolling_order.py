"""The order a rolling operation (upgrade, restart) takes the members in. Pure.

One node at a time, and the writes stop once, for one switchover: every replica first, the
member that will take over last among them (it must already run the new version when it
leads), then a switchover to it, then the old primary, a replica by then.

The candidate is the synchronous standby when there is one (with synchronous_mode Patroni
promotes no other member), else the streaming replica with the least replay lag, ties
broken by the spec's order so a plan is the same every time it is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pgha.models import Model
from pgha.status_models import LEADER_ROLES, REPLICA_ROLES, Member, PatroniStatus

RUNNING = ("running", "streaming")


class NoRollingOrder(ValueError):
    """The cluster is not in a state a rolling operation may start from."""


class RollingPlan(Model):
    #: Replicas in the order they are taken down, the candidate last.
    replicas: list[str]
    #: The replica the switchover hands the primary role to.
    candidate: str
    #: The primary when the plan was made; it goes last, after the switchover.
    primary: str

    @property
    def order(self) -> list[str]:
        return [*self.replicas, self.primary]


def rolling_order(view: PatroniStatus, spec_order: Sequence[str]) -> RollingPlan:
    """The plan for ``view`` (Patroni's cluster view); ``spec_order`` is the member names
    in the spec's order.

    :raises NoRollingOrder: not exactly one running leader, a member that does not run, or
        no replica that could take over.
    """
    leaders = [m for m in view.members if m.role in LEADER_ROLES]
    if len(leaders) != 1 or leaders[0].state not in RUNNING:
        found = ", ".join(f"{m.name} ({m.state})" for m in leaders) or "none"
        raise NoRollingOrder(f"a rolling operation needs one running leader; found {found}")
    down = [m for m in view.members if m.state not in RUNNING]
    if down:
        raise NoRollingOrder(
            "every member must run before a rolling operation starts; not running: "
            + ", ".join(f"{m.name} ({m.state})" for m in down)
        )
    replicas = [m for m in view.members if m.role in REPLICA_ROLES]
    if not replicas:
        raise NoRollingOrder(
            f"{leaders[0].name} has no replica to hand the primary role to: a rolling "
            "operation would stop the writes for the whole time the primary is down"
        )
    rank = {name: i for i, name in enumerate(spec_order)}

    def spec_rank(m: Member) -> int:
        return rank.get(m.name, len(rank))

    candidate = _candidate(replicas, spec_rank)
    others = sorted((m for m in replicas if m is not candidate), key=spec_rank)
    return RollingPlan(
        replicas=[m.name for m in others] + [candidate.name],
        candidate=candidate.name,
        primary=leaders[0].name,
    )


def _candidate(replicas: list[Member], spec_rank: Callable[[Member], int]) -> Member:
    sync = [m for m in replicas if m.role == "sync_standby"]
    if sync:
        return min(sync, key=spec_rank)
    # Unknown lag sorts after every known one.
    return min(replicas, key=lambda m: (m.lag_bytes is None, m.lag_bytes or 0, spec_rank(m)))
