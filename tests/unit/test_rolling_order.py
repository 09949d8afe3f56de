"""Which member a rolling operation takes first, which last, and when it must not start."""

from __future__ import annotations

import pytest

from pgha.checks.rolling_order import NoRollingOrder, rolling_order
from pgha.status_models import Member, PatroniStatus

SPEC = ["db1", "db2", "db3"]


def view(*members: tuple[str, str, str, int | None]) -> PatroniStatus:
    return PatroniStatus(
        members=[Member(name=n, host=n, role=r, state=s, timeline=3, lag_bytes=lag)
                 for n, r, s, lag in members],
        source="db1",
    )  # fmt: skip


def test_replicas_first_least_lagging_last_then_the_primary() -> None:
    plan = rolling_order(
        view(("db1", "replica", "streaming", 4096), ("db2", "leader", "running", None),
             ("db3", "replica", "streaming", 0)),
        SPEC,
    )  # fmt: skip
    assert plan.candidate == "db3" and plan.primary == "db2"
    assert plan.order == ["db1", "db3", "db2"]


def test_the_synchronous_standby_is_the_candidate_even_when_it_lags_more() -> None:
    plan = rolling_order(
        view(("db1", "leader", "running", None), ("db2", "sync_standby", "streaming", 8192),
             ("db3", "replica", "streaming", 0)),
        SPEC,
    )  # fmt: skip
    assert plan.replicas == ["db3", "db2"] and plan.candidate == "db2"


def test_equal_lag_follows_the_spec_order_and_unknown_lag_goes_after_known() -> None:
    plan = rolling_order(
        view(("db3", "replica", "running", None), ("db2", "replica", "running", 0),
             ("db1", "leader", "running", None)),
        SPEC,
    )  # fmt: skip
    assert plan.candidate == "db2" and plan.order == ["db3", "db2", "db1"]
    tie = rolling_order(
        view(("db3", "replica", "streaming", 0), ("db2", "replica", "streaming", 0),
             ("db1", "leader", "running", None)),
        SPEC,
    )  # fmt: skip
    assert tie.replicas == ["db3", "db2"]  # db2 comes first in the spec, so it takes over


@pytest.mark.parametrize(
    ("members", "says"),
    [
        ((("db1", "replica", "streaming", 0), ("db2", "replica", "streaming", 0)),
         "one running leader; found none"),
        ((("db1", "leader", "running", None), ("db2", "leader", "running", None)),
         "found db1 (running), db2 (running)"),
        ((("db1", "leader", "running", None), ("db2", "replica", "start failed", None)),
         "not running: db2 (start failed)"),
        ((("db1", "leader", "running", None),), "db1 has no replica"),
    ],
)  # fmt: skip
def test_refused_with_the_reason(
    members: tuple[tuple[str, str, str, int | None], ...], says: str
) -> None:
    with pytest.raises(NoRollingOrder, match=says.replace("(", r"\(").replace(")", r"\)")):
        rolling_order(view(*members), SPEC)
