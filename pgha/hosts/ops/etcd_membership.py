"""Change an etcd cluster's membership one member at a time, keeping quorum: add a member
(`member add`, before it first starts), remove one (leadership moved away first, then
`member remove`), and retire a removed member's host (etcd stopped, its data set aside).
Each is idempotent: it looks at the member list before it acts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from pgha.errors import HostError
from pgha.hosts.facts import etcd as facts
from pgha.hosts.facts.etcd import ETCD_UNIT
from pgha.hosts.host import Host, render_command
from pgha.hosts.result import Outcome

LEADER_MOVE_WITHIN_S = 30.0


class EtcdMembershipRefused(HostError):
    """The change would cost the quorum or cannot be made now. Permanent."""


def only_initial_settings_differ(old: str, new: str) -> bool:
    """Whether two /etc/default/etcd texts differ only in ETCD_INITIAL_* lines, which etcd
    reads only when it bootstraps (an empty data directory): a running member needs no
    restart for them. Pure."""

    def settings(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if not ln.startswith("ETCD_INITIAL_")]

    return old != new and settings(old) == settings(new)


async def _members(host: Host, endpoints: Sequence[str]) -> list[facts.Member]:
    found = await facts.member_list(host, endpoints)
    if found is None:
        raise RuntimeError(f"host {host.name}: no etcd endpoint answered `member list` "
                           f"({', '.join(endpoints)})")  # fmt: skip
    return found


async def add_member(host: Host, endpoints: Sequence[str], name: str, peer_url: str) -> Outcome:
    """`etcdctl member add` for ``name`` at ``peer_url`` unless the cluster lists that peer
    URL already. Refused while any member is unhealthy: the cluster grows only from a
    healthy quorum.

    :raises EtcdMembershipRefused: a member is unhealthy.
    """
    members = await _members(host, endpoints)
    if any(peer_url in m.peer_urls for m in members):
        return Outcome.unchanged(f"{name} ({peer_url}) is in the member list already")
    sick = [h.endpoint for h in await facts.health(host, endpoints) if not h.healthy]
    if sick:
        raise EtcdMembershipRefused(host.name, f"etcd members not healthy: {', '.join(sick)}; "
                                    "the cluster grows only from a healthy quorum")  # fmt: skip
    cmd = facts.etcdctl(endpoints, "member", "add", name, f"--peer-urls={peer_url}")
    await host.run(cmd, label="etcdctl member add")
    return Outcome.made(f"added {name} ({peer_url}) to the etcd member list", [render_command(cmd)])


async def remove_member(host: Host, endpoints: Sequence[str], peer_url: str) -> Outcome:
    """Remove the member at ``peer_url``. When it leads, leadership moves to another
    member first (`move-leader`), so the cluster never has to elect under a shrinking
    membership. Idempotent: a member already gone changes nothing.

    :raises EtcdMembershipRefused: fewer than three members would be left, or a member is
        unhealthy (its loss and this removal together could cost the quorum).
    """
    members = await _members(host, endpoints)
    gone = next((m for m in members if peer_url in m.peer_urls), None)
    if gone is None:
        return Outcome.unchanged(f"{peer_url} is not in the etcd member list")
    if len(members) - 1 < 3:
        raise EtcdMembershipRefused(host.name, f"removing {gone.name} would leave "
                                    f"{len(members) - 1} etcd members: with fewer than three, "
                                    "losing one more loses the quorum; add one first")  # fmt: skip
    others = [m for m in members if m.id != gone.id]
    client_urls = [u for m in others for u in m.client_urls]
    sick = [h.endpoint for h in await facts.health(host, client_urls) if not h.healthy]
    if sick:
        raise EtcdMembershipRefused(host.name, f"etcd members not healthy: {', '.join(sick)}")
    moved = await hand_off_leadership(host, members, gone)
    commands = list(moved.commands) if moved else []
    said = f"{moved.summary}; " if moved else ""
    cmd = facts.etcdctl(client_urls, "member", "remove", f"{gone.id:x}")
    await host.run(cmd, label="etcdctl member remove")
    commands.append(render_command(cmd))
    return Outcome.made(f"{said}removed {gone.name} from the etcd member list", commands)


async def hand_off_leadership(
    host: Host, members: Sequence[facts.Member], member: facts.Member
) -> Outcome | None:
    """When ``member`` leads, `move-leader` to the first other member, and wait until the
    cluster says that one leads: a planned hand-off, instead of an election after
    ``member`` stops. None when ``member`` does not lead.

    :raises RuntimeError: leadership did not move within :data:`LEADER_MOVE_WITHIN_S`.
    """
    all_urls = [u for m in members for u in m.client_urls]
    if await facts.leader_id(host, all_urls) != member.id:
        return None
    others = [m for m in members if m.id != member.id]
    to = others[0]
    cmd = facts.etcdctl(member.client_urls, "move-leader", f"{to.id:x}")
    await host.run(cmd, label="etcdctl move-leader")
    other_urls = [u for m in others for u in m.client_urls]
    deadline = time.monotonic() + LEADER_MOVE_WITHIN_S
    while await facts.leader_id(host, other_urls) != to.id:
        if time.monotonic() > deadline:
            raise RuntimeError(f"etcd leadership did not move from {member.name} to {to.name}")
        await asyncio.sleep(0.5)
    return Outcome.made(f"moved etcd leadership from {member.name} to {to.name}",
                        [render_command(cmd)])  # fmt: skip


async def retire(host: Host, data_dir: str, marker: str, stamp: str) -> Outcome:
    """Stop and disable etcd on a removed member and set its data aside (to
    ``<data_dir>.removed-<stamp>``): a removed member's data can never rejoin, and a later
    add must start from an empty directory. Nothing is deleted. Idempotent."""
    aside = f"{data_dir}.removed-{stamp}"
    script = (
        f"systemctl disable --now {ETCD_UNIT} >/dev/null 2>&1 || true; "
        f'if [ -d "{data_dir}/member" ]; then mv -- "{data_dir}" "{aside}"; echo moved; fi; '
        f'rm -f -- "{marker}"'
    )
    out = await host.run(script, label="retire etcd member")
    moved = "moved" in out.stdout
    return Outcome.made(
        f"etcd stopped and disabled on {host.name}"
        + (f"; its data set aside in {aside}" if moved else ""),
        [script],
    )
