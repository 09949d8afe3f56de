"""Which Patroni versions and watchdog modes earn the stalled-leader warning."""

from __future__ import annotations

from pgha.checks.patroni_risks import stalled_leader_risk
from pgha.hosts.facts.patroni import patroni_version
from tests.unit.fakes import FakeHost


def test_patroni_3_0_2_without_a_watchdog_is_warned_about_with_the_fix() -> None:
    warning = stalled_leader_risk((3, 0, 2), "automatic")
    assert warning is not None
    assert "Patroni 3.0.2" in warning and "3.0.3" in warning and "#2689" in warning


def test_a_watchdog_or_a_fixed_patroni_needs_no_warning() -> None:
    assert stalled_leader_risk((3, 0, 2), "required") is None
    assert stalled_leader_risk((3, 0, 3), "automatic") is None
    assert stalled_leader_risk((4, 1, 5), "off") is None


async def test_the_installed_version_is_read_or_none() -> None:
    host = FakeHost("db1").on("patroni --version", "patroni 3.0.2\n")
    assert await patroni_version(host) == (3, 0, 2)
    missing = FakeHost("db1").on("patroni --version", "", exit_code=127)
    assert await patroni_version(missing) is None
