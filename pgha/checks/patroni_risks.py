"""Known Patroni defects that change what a failure costs, by version: the operator is
warned at provision time, not surprised by a drill (or an incident).
"""

from __future__ import annotations

#: Patroni before 3.0.3 re-creates its leader key unconditionally when it finds its etcd
#: lease expired (patroni/patroni#2689, fixed in 3.0.3): a leader that was stalled longer
#: than ttl (a paused VM, SIGSTOP, a long I/O hang) and resumes can overwrite the key a
#: replica took meanwhile, and the promoted replica's writes are lost. A watchdog resets
#: such a host before its key expires, which closes the window.
LEADER_KEY_OVERWRITE_FIXED_IN = (3, 0, 3)


def stalled_leader_risk(version: tuple[int, int, int], watchdog: str) -> str | None:
    """A warning when this Patroni, run with this effective watchdog mode, can let a
    resumed stalled leader take the key back from its successor; None when it cannot.

    :param watchdog: the effective mode (``required`` when the host has a watchdog).
    """
    if version >= LEADER_KEY_OVERWRITE_FIXED_IN or watchdog == "required":
        return None
    found = ".".join(map(str, version))
    return (
        f"Patroni {found} without a watchdog: a leader stalled longer than ttl can, when it "
        "resumes, overwrite the leader key its successor took and the successor's writes "
        "are lost (patroni/patroni#2689, fixed in 3.0.3; the freeze-primary drill shows "
        "it). Give the host a watchdog or run Patroni 3.0.3 or later (e.g. "
        "patroni.pypi_version: 3.0.4 in the spec; see docs/upgrades.md)"
    )
