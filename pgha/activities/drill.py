"""Drill activities on the cluster's hosts: inject a fault, and wait for Patroni's view to
reach a state (a running leader, a healed cluster). Faults are real: a Patroni
switchover, a SIGKILL of the primary's postmaster.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import time
from datetime import UTC, datetime

from temporalio import activity

from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import param, permanent
from pgha.activities.status import http_get
from pgha.checks.dead_timelines import dead_timelines, set_aside_script
from pgha.checks.status import parse_patroni_cluster
from pgha.drill_models import FailoverSeen, HistorySwitch
from pgha.hosts.ops.packages import ensure_packages
from pgha.spec import ClusterSpec, PowerControl, Role
from pgha.status_models import LEADER_ROLES, PatroniStatus
from pgha.steps import HostStep, StepResult

PATRONI_CONFIG = "/etc/patroni/config.yml"
#: Patroni roles of the member that accepts writes.
POLL_S = 0.5
#: How long one member's view may take before it counts as not answering.
VIEW_TIMEOUT_S = 3.0


def _now() -> str:
    """The moment a fault is injected, for the report's Patroni times (ISO, UTC)."""
    return datetime.now(UTC).isoformat()


@activity.defn(name="drill.switchover")
async def switchover(step: HostStep) -> StepResult:
    """A planned switchover through Patroni from the leader ``step.host`` to
    ``params["candidate"]`` (patronictl on the leader, with Patroni's own credentials)."""
    candidate = param(step, "candidate")
    async with heartbeating(), open_host(step.target) as host:
        at = _now()
        out = await host.run(
            ["patronictl", "-c", PATRONI_CONFIG, "switchover", "--leader", step.host,
             "--candidate", candidate, "--force"],
            label="patronictl switchover", timeout=120,
        )  # fmt: skip
    return StepResult(
        host=step.host, changed=True, summary=f"switchover {step.host} -> {candidate}",
        facts={"output": out.stdout[-500:], "at": at},
    )  # fmt: skip


@activity.defn(name="drill.kill_postgres")
async def kill_postgres(step: HostStep) -> StepResult:
    """SIGKILL of the postmaster on ``step.host`` (the pid from postmaster.pid): no
    shutdown checkpoint, no goodbye to clients. Patroni decides what follows."""
    data = step.spec.postgres.data_path
    async with heartbeating(), open_host(step.target) as host:
        at = _now()
        out = await host.run(
            f"pid=$(head -n 1 {data}/postmaster.pid) && kill -KILL \"$pid\" && echo \"$pid\"",
            label="kill postmaster", timeout=30,
        )  # fmt: skip
    pid = out.stdout.strip()
    return StepResult(host=step.host, changed=True, summary=f"postmaster {pid} killed",
                      facts={"pid": pid, "at": at})  # fmt: skip


async def _views(spec: ClusterSpec) -> list[PatroniStatus]:
    """Patroni's cluster view from every member that answers. A member cut off from etcd
    still answers, with a stale view: callers look for the view that shows progress."""

    async def read(name: str, address: str) -> PatroniStatus:
        async with open_host(spec.target(name)) as host:
            url = f"http://{address}:{spec.patroni.restapi_port}/cluster"
            return parse_patroni_cluster(await http_get(host, url), name)

    async def one(name: str, address: str) -> PatroniStatus | None:
        # Bounded: a powered-off host makes SSH wait for its connect timeout, and the
        # poll must not slow down (the report's detection times come from it).
        try:
            return await asyncio.wait_for(read(name, address), VIEW_TIMEOUT_S)
        except Exception:  # that member is down or frozen
            return None

    found = await asyncio.gather(*(one(h.name, str(h.address))
                                   for h in spec.hosts_with(Role.postgres)))  # fmt: skip
    return [v for v in found if v is not None]


async def _view(spec: ClusterSpec) -> PatroniStatus | None:
    views = await _views(spec)
    return views[0] if views else None


async def _postmaster_pid(spec: ClusterSpec, host_name: str) -> str:
    """The pid in the host's postmaster.pid when that process runs, else empty."""
    data = spec.postgres.data_path
    try:
        async with open_host(spec.target(host_name)) as host:
            out = await host.run(
                f'pid=$(head -n 1 {data}/postmaster.pid 2>/dev/null) && kill -0 "$pid" '
                '2>/dev/null && echo "$pid"',
                check=False, label="postmaster pid", timeout=10,
            )  # fmt: skip
    except Exception:  # the host itself is gone
        return ""
    return out.stdout.strip()


def leader_of(view: PatroniStatus) -> str | None:
    running = [m for m in view.members if m.role in LEADER_ROLES and m.state == "running"]
    return running[0].name if running else None


def healthy(view: PatroniStatus, members: int, max_lag: int) -> list[str]:
    """What keeps the cluster from being whole: every member running (replicas streaming)
    with lag at most ``max_lag`` bytes, one running leader. Pure."""
    problems = []
    if leader_of(view) is None:
        problems.append("no running leader")
    if len(view.members) < members:
        problems.append(f"{len(view.members)} of {members} members in Patroni's view")
    leader = next((m for m in view.members if m.role in LEADER_ROLES), None)
    for m in view.members:
        if m.state not in ("running", "streaming"):
            problems.append(f"{m.name} is {m.state}")
        elif m.role not in LEADER_ROLES and (m.lag_bytes is None or m.lag_bytes > max_lag):
            problems.append(f"{m.name} lags {m.lag_bytes} bytes")
        elif (m.role not in LEADER_ROLES and leader is not None and m.timeline is not None
              and leader.timeline is not None and m.timeline != leader.timeline):  # fmt: skip
            problems.append(f"{m.name} is on timeline {m.timeline}, {leader.name} on "
                            f"{leader.timeline}")  # fmt: skip
    return problems


def not_streaming(view: PatroniStatus, replication: dict[str, str]) -> list[str]:
    """Replicas of the view that the leader does not stream to (``replication``: the
    leader's pg_stat_replication, application_name -> state). Patroni's lag figure compares
    positions only, so a replica that replayed another timeline's WAL from the archive past
    the fork can show no lag while it follows nothing. Pure."""
    return [m.name for m in view.members
            if m.role not in LEADER_ROLES and replication.get(m.name) != "streaming"]  # fmt: skip


def parse_replication(text: str) -> dict[str, str]:
    """Patroni's ``GET /patroni`` on the leader: its pg_stat_replication as
    application_name -> state (empty when no standby is connected). Pure."""
    rows = json.loads(text or "{}").get("replication") or []
    return {str(r.get("application_name", "")): str(r.get("state", "")) for r in rows}


async def _replication(spec: ClusterSpec, leader: str) -> dict[str, str]:
    """The leader's pg_stat_replication through its Patroni (empty when unreadable)."""
    address = spec.host(leader).address
    try:
        async with open_host(spec.target(leader)) as host:
            url = f"http://{address}:{spec.patroni.restapi_port}/patroni"
            return parse_replication(await http_get(host, url))
    except Exception:  # the leader does not answer: nothing streams from it either
        return {}


def agreed_health(views: list[PatroniStatus], members: int, max_lag: int) -> list[str]:
    """:func:`healthy` for every member's view, and all of them naming the same leader: a
    member that was cut off serves its last view of the cluster until it reads etcd again,
    and that stale view can look whole. Pure."""
    if len(views) < members:
        return [f"{len(views)} of {members} members answer"]
    leaders = sorted({leader_of(v) or "none" for v in views})
    if len(leaders) > 1:
        return [f"members disagree on the leader ({', '.join(leaders)})"]
    return sorted({p for v in views for p in healthy(v, members, max_lag)})


#: A member that failed to start and has not run since for this long is stuck: Patroni
#: retries the start every loop, but a member whose data cannot follow the leader (a dead
#: timeline in the archive, a diverged history) fails each time. Waiting out the whole
#: heal timeout for it only delays the next remedy.
STUCK_AFTER_S = 45.0


#: States of a member between two attempts to start it.
RETRYING_START = ("start failed", "starting", "stopped", "crashed")


class StartFailures:
    """Since when each member has failed to start without running since. Pure."""

    def __init__(self) -> None:
        self.since: dict[str, float] = {}

    def stuck(self, views: list[PatroniStatus], now: float) -> list[str]:
        """Note ``views`` seen at ``now`` (monotonic seconds); the members stuck by then."""
        for view in views[:1]:
            for m in view.members:
                if m.state == "start failed":
                    self.since.setdefault(m.name, now)
                elif m.state not in RETRYING_START:  # running, or a reinit's basebackup
                    self.since.pop(m.name, None)
        return sorted(n for n, t in self.since.items() if now - t >= STUCK_AFTER_S)


async def _await_leader(step: HostStep) -> FailoverSeen:
    """Poll every member's view until a running leader other than ``params["not"]``
    shows (see :func:`wait_leader`), noting when the old leader first stopped showing as
    running in every view (Patroni noticed) and when the awaited leader first ran."""
    avoid = step.params.get("not", "")
    within = float(step.params.get("within_s", "120"))
    killed_on, killed_pid = step.params.get("killed_on", ""), step.params.get("killed_pid", "")
    old = avoid or killed_on
    deadline = time.monotonic() + within
    last: PatroniStatus | None = None
    detected: datetime | None = None
    async with heartbeating():
        while time.monotonic() < deadline:
            views = await _views(step.spec)
            last = views[0] if views else last
            if old and views and detected is None:
                if all(leader_of(v) != old for v in views):
                    detected = datetime.now(UTC)
            for view in views:
                leader = leader_of(view)
                # Patroni notices a killed postmaster only at its next loop: until then
                # its view still shows the old leader running. Only a new postmaster (or
                # another leader) means the cluster reacted.
                reacted = not killed_on or (
                    leader not in (None, killed_on)
                    or await _postmaster_pid(step.spec, killed_on) not in ("", killed_pid)
                )
                if leader and leader != avoid and reacted:
                    now = datetime.now(UTC)
                    return FailoverSeen(view=view, detected_at=detected or now, leader_at=now)
            await asyncio.sleep(POLL_S)
    members = ", ".join(f"{m.name} {m.role} {m.state}" for m in last.members) if last else "-"
    raise permanent(f"no running leader{' other than ' + avoid if avoid else ''} within "
                    f"{within:g} s; Patroni's last view: {members}", "NoLeader")  # fmt: skip


@activity.defn(name="drill.wait_leader")
async def wait_leader(step: HostStep) -> PatroniStatus:
    """Wait until Patroni shows a running leader other than ``params["not"]`` (empty: any),
    polling every half second; ``params["within_s"]`` bounds it. With
    ``params["killed_on"]`` and ``["killed_pid"]``: also until that host runs a new
    postmaster or another member leads.

    :raises ApplicationError: NoLeader (non-retryable) with the last view when it is not
        there in time.
    """
    return (await _await_leader(step)).view


@activity.defn(name="drill.watch_failover")
async def watch_failover(step: HostStep) -> FailoverSeen:
    """:func:`wait_leader`, also saying when Patroni's views stopped showing the old
    leader (``params["not"]`` or ``["killed_on"]``) as running and when the new one ran.

    :raises ApplicationError: NoLeader (non-retryable), as wait_leader.
    """
    return await _await_leader(step)


def parse_history(text: str) -> HistorySwitch | None:
    """The newest entry of Patroni's ``GET /history``: ``[[timeline, lsn, reason,
    timestamp, new_leader], ...]`` (timestamp and new_leader are missing in old entries).
    None for an empty history (a cluster that never switched). Pure."""
    entries = [e for e in json.loads(text or "[]") if isinstance(e, list) and len(e) >= 3]
    if not entries:
        return None
    last = entries[-1]
    at: datetime | None = None
    if len(last) > 3 and isinstance(last[3], str):
        try:
            at = datetime.fromisoformat(last[3])
        except ValueError:
            at = None
        at = at if at is None or at.tzinfo else at.replace(tzinfo=UTC)
    # Patroni records the timeline that ended; the switch made the next one.
    return HistorySwitch(timeline=int(last[0]) + 1, reason=str(last[2]), at=at,
                         new_leader=str(last[4]) if len(last) > 4 else "")  # fmt: skip


@activity.defn(name="drill.patroni_history")
async def patroni_history(step: HostStep) -> HistorySwitch:
    """The newest timeline switch in Patroni's history, read from ``step.host`` (timeline
    0 when the cluster never switched)."""
    spec = step.spec
    url = f"http://{spec.host(step.host).address}:{spec.patroni.restapi_port}/history"
    async with heartbeating(), open_host(step.target) as host:
        return parse_history(await http_get(host, url)) or HistorySwitch(timeline=0)


@activity.defn(name="drill.wait_healthy")
async def wait_healthy(step: HostStep) -> PatroniStatus:
    """Wait until every member runs and streams with no lag and one leader runs
    (``params["within_s"]`` bounds it, ``params["max_lag"]`` in bytes, default 0).

    :raises ApplicationError: NotHealed (non-retryable) naming what is still wrong.
    """
    within = float(step.params.get("within_s", "180"))
    max_lag = int(step.params.get("max_lag", "0"))
    members = len(step.spec.hosts_with(Role.postgres))
    deadline = time.monotonic() + within
    problems = ["no member answered"]
    failures = StartFailures()
    async with heartbeating():
        while time.monotonic() < deadline:
            views = await _views(step.spec)
            stuck = failures.stuck(views, time.monotonic())
            if stuck:
                raise permanent(
                    f"the cluster is not whole: {', '.join(stuck)} failed to start and has "
                    f"not run for {STUCK_AFTER_S:g} s", "NotHealed",
                )  # fmt: skip
            problems = agreed_health(views, members, max_lag)
            leader = leader_of(views[0]) if views else None
            if not problems and leader is not None:
                stray = not_streaming(views[0], await _replication(step.spec, leader))
                problems = [f"{name} does not stream from {leader}" for name in stray]
            if not problems:
                return views[0]
            await asyncio.sleep(POLL_S)
    raise permanent(
        f"the cluster is not whole after {within:g} s: {'; '.join(problems)}", "NotHealed"
    )


@activity.defn(name="drill.systemctl")
async def systemctl(step: HostStep) -> StepResult:
    """``systemctl <params["action"]> <params["units"]>`` on ``step.host`` (stop to inject a
    fault, start to heal it). Idempotent: starting a running unit changes nothing."""
    action, units = param(step, "action"), param(step, "units").split()
    if action not in ("stop", "start"):
        raise permanent(f"systemctl action {action!r} is not stop or start", "InvalidStepInput")
    async with heartbeating(), open_host(step.target) as host:
        at = _now()
        await host.run(["systemctl", action, *units], label=f"systemctl {action}", timeout=120)
    return StepResult(host=step.host, changed=True, facts={"at": at},
                      summary=f"{action} {' '.join(units)} on {step.host}")  # fmt: skip


async def _vip_holders(spec: ClusterSpec) -> list[str]:
    vip = str(spec.vip.address.ip) if spec.vip else ""
    holders = []
    for p in spec.hosts_with(Role.haproxy):
        try:
            async with open_host(spec.target(p.name)) as host:
                out = await host.run(["ip", "-o", "-4", "addr", "show"], timeout=10)
        except Exception:  # a proxy that does not answer holds nothing we can use
            continue
        if any(f" {vip}/" in line for line in out.stdout.splitlines()):
            holders.append(p.name)
    return holders


@activity.defn(name="drill.wait_vip")
async def wait_vip(step: HostStep) -> str:
    """Wait until exactly one proxy other than ``params["not"]`` holds the VIP; its name.

    :raises ApplicationError: VipStuck (non-retryable) naming the holders seen last.
    """
    avoid = step.params.get("not", "")
    within = float(step.params.get("within_s", "60"))
    deadline = time.monotonic() + within
    holders: list[str] = []
    async with heartbeating():
        while time.monotonic() < deadline:
            holders = await _vip_holders(step.spec)
            if len(holders) == 1 and holders[0] != avoid:
                return holders[0]
            await asyncio.sleep(POLL_S)
    raise permanent(f"the VIP did not move away from {avoid or '-'} within {within:g} s "
                    f"(held by: {', '.join(holders) or 'nobody'})", "VipStuck")  # fmt: skip


@activity.defn(name="drill.power")
async def power(step: HostStep) -> StepResult:
    """Power ``step.host`` off or on (``params["action"]``) out of band, from the worker:
    the lab's docker kill/start, or the spec's drill.power_off/power_on command.

    :raises ApplicationError: NoPowerControl (non-retryable) when the spec has none.
    """
    action = param(step, "action")
    spec = step.spec
    control = spec.drill.power
    if control is PowerControl.lab:
        from pgha.lab.hosts import lab_power  # the lab needs docker: only here

        async with heartbeating():
            at = _now()
            done = await lab_power(step.host, on=action == "on")
        return StepResult(host=step.host, changed=done.changed, summary=f"power {action}",
                          facts={"at": at})  # fmt: skip
    template = spec.drill.power_on if action == "on" else spec.drill.power_off
    if control is not PowerControl.command or not template:
        raise permanent(
            f"cluster {spec.cluster} has no power control (drill.power is {control.value}): "
            "host-loss drills need drill.power lab or command",
            "NoPowerControl",
        )
    command = template.format(host=step.host, address=spec.host(step.host).address)
    async with heartbeating():
        at = _now()
        proc = await asyncio.create_subprocess_shell(
            command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
    if proc.returncode != 0:
        raise RuntimeError(f"power {action} of {step.host}: `{command}` exited "
                           f"{proc.returncode}: {out.decode()[-500:]}")  # fmt: skip
    return StepResult(host=step.host, changed=True, summary=f"power {action} ({command})",
                      facts={"at": at})  # fmt: skip


PARTITION_TABLE = "pgha_drill"


def partition_rules(peers: list[str]) -> str:
    """An nftables table dropping all traffic to and from ``peers`` (the other cluster
    hosts and the VIP); everything else (pgha's SSH) passes. Pure."""
    addrs = ", ".join(peers)
    return (
        f"table inet {PARTITION_TABLE} {{\n"
        "  chain input { type filter hook input priority -10; policy accept;\n"
        f"    ip saddr {{ {addrs} }} drop\n  }}\n"
        "  chain output { type filter hook output priority -10; policy accept;\n"
        f"    ip daddr {{ {addrs} }} drop\n  }}\n"
        "}\n"
    )


@activity.defn(name="drill.partition")
async def partition(step: HostStep) -> StepResult:
    """``params["action"]`` cut: isolate ``step.host`` from every other host of the spec
    (and the VIP) with an nftables table of its own, installing nftables when missing;
    heal: delete that table (idempotent)."""
    action = param(step, "action")
    spec = step.spec
    async with heartbeating(), open_host(step.target) as host:
        if action == "heal":
            await host.run(f"nft delete table inet {PARTITION_TABLE} 2>/dev/null; true",
                           label="nft heal", timeout=30)  # fmt: skip
            return StepResult(host=step.host, changed=True, summary="partition removed")
        await ensure_packages(host, {"nftables": None}, env_proxy=spec.packages.apt_proxy)
        peers = [str(h.address) for h in spec.hosts if h.name != step.host]
        if spec.vip is not None:
            peers.append(str(spec.vip.address.ip))
        at = _now()
        await host.run(["nft", "-f", "-"], input=partition_rules(peers), label="nft cut",
                       timeout=30)  # fmt: skip
    return StepResult(host=step.host, changed=True, facts={"at": at},
                      summary=f"{step.host} cut off from {len(peers)} addresses")  # fmt: skip


@activity.defn(name="drill.signal")
async def signal(step: HostStep) -> StepResult:
    """SIGSTOP (``params["signal"]`` STOP) or SIGCONT (CONT) to every process of the
    postgres user on ``step.host``: Patroni and PostgreSQL freeze or resume together."""
    sig = param(step, "signal")
    if sig not in ("STOP", "CONT"):
        raise permanent(f"signal {sig!r} is not STOP or CONT", "InvalidStepInput")
    async with heartbeating(), open_host(step.target) as host:
        at = _now()
        out = await host.run(f"pkill -{sig} -u postgres; pgrep -c -u postgres || true",
                             label=f"pkill -{sig}", timeout=30)  # fmt: skip
    return StepResult(host=step.host, changed=True, facts={"at": at},
                      summary=f"SIG{sig} to {out.stdout.strip()} postgres processes")  # fmt: skip


def diverged(view: PatroniStatus, leader: str, replication: dict[str, str]) -> list[str]:
    """Members of the leader's view that do not follow it: not running, or not streaming
    from it (``replication``: the leader's pg_stat_replication by application_name). Pure."""
    return [m.name for m in view.members
            if m.name != leader and (m.state not in ("running", "streaming")
                                     or replication.get(m.name) != "streaming")]  # fmt: skip


@activity.defn(name="drill.reinit_diverged")
async def reinit_diverged(step: HostStep) -> StepResult:
    """Reinitialise, from the leader, every member that did not come back by itself
    (``patronictl reinit --force`` on that member: its data directory is replaced by a
    fresh copy of the leader's). Only with one running leader that every answering member
    agrees on: never guess which copy of the data is the good one.

    :raises ApplicationError: NoAgreedLeader (non-retryable) when the members disagree or
        none leads.
    """
    spec = step.spec
    async with heartbeating():
        views = await _views(spec)
        leaders = {leader_of(v) for v in views}
        if not views or len(leaders) != 1 or None in leaders:
            raise permanent(
                "healing cannot reinitialise anything: the members do not agree on one running "
                f"leader ({', '.join(sorted(str(x) for x in leaders)) or 'no member answers'})",
                "NoAgreedLeader",
            )
        leader = str(leaders.pop())
        own = next((v for v in views if v.source == leader), views[0])
        names = diverged(own, leader, await _replication(spec, leader))
        for name in names:
            async with open_host(spec.target(name)) as host:
                await host.run(
                    ["patronictl", "-c", PATRONI_CONFIG, "reinit", spec.cluster, name,
                     "--force"],
                    label=f"patronictl reinit {name}", timeout=120,
                )  # fmt: skip
    return StepResult(
        host=step.host, changed=bool(names),
        summary=(f"reinitialised {', '.join(names)} from {leader}" if names
                 else f"nothing to reinitialise ({leader} leads)"),
        facts={"reinitialised": ",".join(names), "leader": leader},
    )  # fmt: skip


@activity.defn(name="drill.set_aside_dead_timelines")
async def set_aside_dead_timelines(step: HostStep) -> StepResult:
    """On the repository host ``step.host``: move the archive's files of every timeline
    newer than the agreed leader's into ``<repo>/pgha-set-aside/<UTC stamp>/`` (see
    pgha/checks/dead_timelines.py for why; nothing is deleted).

    :raises ApplicationError: NoAgreedLeader (non-retryable) when the members do not agree
        on one running leader with a known timeline.
    """
    spec = step.spec
    async with heartbeating():
        views = await _views(spec)
        leaders = {leader_of(v) for v in views}
        own = next((v for v in views if v.source in leaders), None)
        me = next((m for m in own.members if m.name == own.source), None) if own else None
        if len(leaders) != 1 or None in leaders or me is None or me.timeline is None:
            raise permanent("no timeline is set aside: the members do not agree on one running "
                            "leader with a known timeline", "NoAgreedLeader")  # fmt: skip
        current = me.timeline
        base = f"{spec.backup.repo_path}/archive/{spec.stanza}"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        moved: list[str] = []
        dead: set[int] = set()
        async with open_host(step.target) as host:
            ids = await host.run(f"ls -1 {shlex.quote(base)}", label="archive ids", timeout=30)
            for archive_id in [i for i in ids.stdout.split() if re.fullmatch(r"\d+-\d+", i)]:
                where = f"{base}/{archive_id}"
                names = await host.run(["ls", "-1", where], label="archive list", timeout=60)
                timelines = dead_timelines(names.stdout.split(), current)
                if not timelines:
                    continue
                dead |= set(timelines)
                to = f"{spec.backup.repo_path}/pgha-set-aside/{stamp}/{archive_id}"
                out = await host.run(["sh", "-c", set_aside_script(where, to, timelines)],
                                     label="set aside dead timelines", timeout=300)  # fmt: skip
                moved += out.stdout.split()
    summary = (f"set aside timeline(s) {', '.join(map(str, sorted(dead)))} newer than the "
               f"leader's {current}: {len(moved)} archive entries moved to "
               f"{spec.backup.repo_path}/pgha-set-aside/{stamp}" if moved
               else f"no timeline newer than the leader's {current} in the archive")  # fmt: skip
    return StepResult(host=step.host, changed=bool(moved), summary=summary,
                      facts={"timelines": ",".join(map(str, sorted(dead))),
                             "moved": str(len(moved))})  # fmt: skip


def stuck_leader(views: list[PatroniStatus]) -> str | None:
    """The member every answering view names as leader while its PostgreSQL does not run
    (seen on Patroni 3.0.2: a primary cut off from etcd rewrote the leader key when it came
    back, then could not start as the diverged copy it was). Pure."""
    holders = {next((m.name for m in v.members if m.role in LEADER_ROLES), None) for v in views}
    if len(holders) != 1 or None in holders:
        return None
    holder = holders.pop()
    states = {m.state for v in views for m in v.members if m.name == holder}
    return holder if states and "running" not in states else None


def successor(view: PatroniStatus, holder: str) -> str | None:
    """The running replica on the newest timeline (then the least lag): the member that
    led last, whose writes the others must keep. Patroni 3.0.2 compares positions across
    timelines and may pick a replica of the dead timeline instead. Pure."""
    running = [m for m in view.members
               if m.name != holder and m.state in ("running", "streaming")]  # fmt: skip
    if not running:
        return None
    best = max(running, key=lambda m: (m.timeline or 0, -(m.lag_bytes or 0)))
    return best.name


@activity.defn(name="drill.release_stuck_leader")
async def release_stuck_leader(step: HostStep) -> StepResult:
    """When one member holds the leader key but cannot run PostgreSQL, nobody else can
    lead. Stop Patroni on every member but the successor (:func:`successor`), so that only
    it can take the key, wait until it leads, then start Patroni on the others again
    (they rejoin as replicas; healing reinitialises those that cannot).

    :raises ApplicationError: NoSuccessor (non-retryable) when no replica runs.
    """
    spec = step.spec
    names = [h.name for h in spec.hosts_with(Role.postgres)]
    async with heartbeating():
        views = await _views(spec)
        holder = stuck_leader(views)
        if holder is None:
            return StepResult(host=step.host, changed=False, summary="no stuck leader")
        heir = successor(views[0], holder)
        if heir is None:
            raise permanent(f"{holder} holds the leader key without running PostgreSQL and no "
                            "replica runs to take over", "NoSuccessor")  # fmt: skip
        others = [n for n in names if n != heir]

        async def patroni(name: str, action: str) -> None:
            async with open_host(spec.target(name)) as host:
                await host.run(["systemctl", action, "patroni"], timeout=120,
                               label=f"systemctl {action} patroni")  # fmt: skip

        await asyncio.gather(*(patroni(n, "stop") for n in others))
        try:
            deadline = time.monotonic() + spec.patroni.ttl * 2 + 60
            while time.monotonic() < deadline:
                if any(leader_of(v) == heir for v in await _views(spec)):
                    break
                await asyncio.sleep(POLL_S)
            else:
                raise RuntimeError(f"{heir} did not take the leader key")
        finally:
            await asyncio.gather(*(patroni(n, "start") for n in others))
    return StepResult(
        host=step.host, changed=True,
        summary=f"{holder} held the leader key without running PostgreSQL: Patroni stopped on "
                f"{', '.join(others)} until {heir} (newest timeline) led, then started again",
        facts={"holder": holder, "successor": heir},
    )  # fmt: skip
