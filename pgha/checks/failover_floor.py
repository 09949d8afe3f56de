"""What Patroni's timers (ttl, loop_wait, retry_timeout) allow a failover drill to show, the
"fast failover" preset, and the rules those timers must obey. Pure: no I/O.

How Patroni's timers shape a drill's write unavailability
---------------------------------------------------------

Every member runs one HA cycle, then sleeps ``loop_wait``. The leader refreshes the lease
that carries its leader key (etcd v3) once a cycle; a leader that cannot do so within
``retry_timeout`` demotes itself (unless failsafe_mode finds every other member by REST).
Replicas do not poll for a vanished leader: Patroni's etcd watch wakes their loop as soon
as the leader key goes, or as soon as the DCS config changes.

- **host-loss, partition-primary, freeze-primary** (ttl-bound): the old leader stops
  refreshing at the fault, and no replica may take its place while its key lives. The key
  was refreshed between 0 and ``loop_wait`` before the fault, so it outlives the fault by
  between ``ttl - loop_wait`` (:func:`best_case_s`) and ``ttl``. The floor is ``ttl``
  (:func:`floor_s`; the issue's "ttl-bound floor"): the figure a run may beat by at most
  ``loop_wait``. On top of it come the leader race (each replica asks the others' REST
  APIs, the lost one's request times out), the promotion, and HAProxy's checks (up to
  about 2 s, see docs/failover-tuning.md). When the lost host was also etcd's leader (the
  lab's database hosts are its etcd members), the new etcd leader renews every lease to
  its full TTL when it takes over (etcd 3.4 keeps no lease checkpoints), so the key can
  live about ttl + etcd's election after the fault: host-loss may exceed the floor there.
- **kill-postgres**: nothing tells Patroni that the postmaster died; it sees it at its
  next cycle, between 0 and ``loop_wait`` after the kill, then restarts PostgreSQL in place
  (crash recovery; primary_start_timeout keeps it from failing over) and HAProxy takes it
  back. Patroni's timers add between 0 and ``loop_wait``: there is no floor above 0
  (:func:`floor_s` is None), and ``loop_wait`` is the bound (:func:`timer_bound_s`). A
  typical run shows about loop_wait / 2 plus the restart.
- **switchover, stop-patroni**: no timer is on the path. The REST request wakes the
  leader's loop at once (switchover); Patroni stops PostgreSQL cleanly and releases the
  key (both); the replicas' watch wakes them. The gap is bounded by PostgreSQL's shutdown
  checkpoint, the promotion and HAProxy's checks, not by Patroni's settings: no floor.
- **etcd-member-loss, proxy-loss**: writes need nothing from Patroni's timers (etcd keeps
  its quorum; keepalived moves the VIP on its own timers): floor 0.
"""

from __future__ import annotations

import re

from pgha.drill_models import Scenario
from pgha.spec import PatroniSettings

#: The leader key must expire before another member may lead.
TTL_BOUND = frozenset({Scenario.host_loss, Scenario.partition_primary, Scenario.freeze_primary})
#: Patroni's timers put no lower bound on these (see the module docstring).
NO_FLOOR = frozenset({Scenario.switchover, Scenario.stop_patroni, Scenario.kill_postgres})
#: Patroni's timers are not on the write path at all.
ZERO_FLOOR = frozenset({Scenario.etcd_member_loss, Scenario.proxy_loss})

#: The "fast failover" preset (docs/failover-tuning.md): 1 + 2*3 = 7 <= 7, Patroni's rule
#: holds with no slack. retry_timeout stays at 3 (Patroni 3.2's minimum; with 3 etcd members
#: each request gets about 1 s); loop_wait 1 makes the leader refresh its key every second,
#: so the key outlives a lost leader by 6-7 s. ttl 8 / loop_wait 2 measured 10.3 s median
#: for host-loss on the lab (6-8 s of key, 2 s of Patroni's REST timeout towards the lost
#: member in the leader race, the promotion). Patroni 3.2 and later raise a ttl under 20 to 20 (see
#: :func:`effective_timers`); the lab's Debian Patroni 3.0.2 takes it as it is.
FAST_FAILOVER = PatroniSettings(ttl=7, loop_wait=1, retry_timeout=3)
#: The DCS keys the preset sets; everything else in PatroniSettings is left alone.
TIMERS = ("ttl", "loop_wait", "retry_timeout")

#: Patroni 3.2 (pull request 2869) started enforcing minimums on the timers.
ENFORCED_SINCE = (3, 2)
MIN_TTL, MIN_LOOP_WAIT, MIN_RETRY_TIMEOUT = 20, 1, 3


def floor_s(scenario: Scenario, patroni: PatroniSettings) -> float | None:
    """The least write unavailability Patroni's settings allow for ``scenario``, in seconds
    (the module docstring gives the reasoning for each scenario).

    :returns: ``ttl`` for the ttl-bound scenarios, 0.0 for those Patroni's timers do not
        touch, None when no floor follows from the timers (switchover, stop-patroni,
        kill-postgres).
    """
    if scenario in TTL_BOUND:
        return float(patroni.ttl)
    if scenario in ZERO_FLOOR:
        return 0.0
    return None


def best_case_s(scenario: Scenario, patroni: PatroniSettings) -> float | None:
    """The least a single run can show from Patroni's timers alone: a ttl-bound drill whose
    fault came just before the leader's next refresh waits ``ttl - loop_wait``.

    :returns: None where :func:`floor_s` is None.
    """
    if scenario in TTL_BOUND:
        return float(patroni.ttl - patroni.loop_wait)
    return floor_s(scenario, patroni)


def timer_bound_s(scenario: Scenario, patroni: PatroniSettings) -> float | None:
    """The most Patroni's timers can add to ``scenario``'s write gap: ``ttl`` for the
    ttl-bound ones, ``loop_wait`` for kill-postgres (detection at the next cycle), 0.0 where
    no timer is on the path.
    """
    if scenario in TTL_BOUND:
        return float(patroni.ttl)
    if scenario is Scenario.kill_postgres:
        return float(patroni.loop_wait)
    return 0.0


def obeys_rule(patroni: PatroniSettings) -> bool:
    """Patroni's rule ``loop_wait + 2 * retry_timeout <= ttl``. After refreshing its key, a
    leader sleeps ``loop_wait``, then may spend up to ``retry_timeout`` reading the cluster
    from etcd and up to ``retry_timeout`` updating its key. With the rule, a leader whose
    etcd stalls has given up and demoted itself by the time its key can expire, so no
    other member promotes while it still takes writes."""
    return patroni.loop_wait + 2 * patroni.retry_timeout <= patroni.ttl


def watchdog_slack_s(patroni: PatroniSettings, safety_margin: int) -> int:
    """Seconds a leader's cycle may overrun ``loop_wait`` before a watchdog resets its host:
    Patroni arms the watchdog for ``ttl - safety_margin`` (``ttl // 2`` when the margin is
    -1) and refuses to use one when this is negative."""
    timeout = patroni.ttl // 2 if safety_margin == -1 else patroni.ttl - safety_margin
    return timeout - patroni.loop_wait


def with_timers(base: PatroniSettings, preset: PatroniSettings) -> PatroniSettings:
    """``base`` with the preset's ttl, loop_wait and retry_timeout (sync mode, lag limit and
    the REST port stay the cluster's)."""
    return base.model_copy(update={k: getattr(preset, k) for k in TIMERS})


def parse_patroni_version(text: str) -> tuple[int, int, int]:
    """``patroni --version`` output (``patroni 3.0.2``) as a tuple.

    :raises ValueError: no version in the text.
    """
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if m is None:
        raise ValueError(f"no Patroni version in {text.strip()[:80]!r}")
    return int(m[1]), int(m[2]), int(m[3] or 0)


def effective_timers(patroni: PatroniSettings, version: tuple[int, ...]) -> PatroniSettings:
    """The timers a Patroni of ``version`` actually runs with: from 3.2 on it raises each
    timer to its minimum (ttl 20, loop_wait 1, retry_timeout 3) and then shrinks loop_wait
    (and, if that is not enough, retry_timeout) until the rule holds, logging only a
    warning. Older versions take the values as they are.
    """
    if tuple(version[:2]) < ENFORCED_SINCE:
        return patroni
    ttl = max(patroni.ttl, MIN_TTL)
    loop_wait = max(patroni.loop_wait, MIN_LOOP_WAIT)
    retry = max(patroni.retry_timeout, MIN_RETRY_TIMEOUT)
    if MIN_LOOP_WAIT + 2 * retry > ttl:
        loop_wait, retry = MIN_LOOP_WAIT, (ttl - MIN_LOOP_WAIT) // 2
    elif loop_wait + 2 * retry > ttl:
        loop_wait = ttl - 2 * retry
    return patroni.model_copy(update={"ttl": ttl, "loop_wait": loop_wait, "retry_timeout": retry})
