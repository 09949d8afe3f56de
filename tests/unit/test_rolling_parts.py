"""The pure parts of rolling upgrades: which Debian version "15.20" means, what the probe's
gaps add up to, the input's limits, the report in words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from pgha.checks.rolling_cost import gap_windows, rolling_cost
from pgha.cli import app
from pgha.drill_models import Outcome, ProbeLog, ReadAttempt, WriteAttempt
from pgha.hosts.facts.apt_versions import (
    VersionNotAvailable,
    parse_madison,
    pick_version,
    upstream,
)
from pgha.operations import ETCD_UPGRADE
from pgha.result_text import result_text
from pgha.rolling_models import (
    EtcdMemberVersion,
    EtcdUpgradeReport,
    MemberOutcome,
    RollingCost,
    UpgradeInput,
    UpgradeReport,
)
from pgha.rolling_text import upgrade_summary
from tests.specs import reference_spec

# `apt-cache madison postgresql-15 postgresql-client-15` on the lab (Debian 12).
MADISON = """\
postgresql-15 | 15.20-0+deb12u1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
postgresql-15 | 15.18-0+deb12u1 | http://deb.debian.org/debian bookworm/main amd64 Packages
postgresql-client-15 | 15.20-0+deb12u1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
postgresql-client-15 | 15.18-0+deb12u1 | http://deb.debian.org/debian bookworm/main amd64 Packages
"""  # noqa: E501


def test_madison_lists_each_packages_versions_newest_first() -> None:
    assert parse_madison(MADISON, "postgresql-15") == ["15.20-0+deb12u1", "15.18-0+deb12u1"]
    assert parse_madison(MADISON, "postgresql-16") == []


@pytest.mark.parametrize(
    ("debian", "up"),
    [("15.20-0+deb12u1", "15.20"), ("1:2.3-1", "2.3"), ("3.0.2", "3.0.2"), ("2:1.2-3-4", "1.2-3")],
)
def test_upstream_version_drops_epoch_and_revision(debian: str, up: str) -> None:
    assert upstream(debian) == up


def test_an_upstream_version_picks_the_debian_one_an_exact_one_itself() -> None:
    offered = parse_madison(MADISON, "postgresql-15")
    assert pick_version("postgresql-15", "15.18", offered, "db1") == "15.18-0+deb12u1"
    assert pick_version("postgresql-15", "15.20-0+deb12u1", offered, "db1") == "15.20-0+deb12u1"


def test_a_version_the_sources_lack_is_named_with_what_they_offer() -> None:
    offered = parse_madison(MADISON, "postgresql-15")
    with pytest.raises(VersionNotAvailable) as err:
        pick_version("postgresql-15", "15.21", offered, "db2")
    assert "15.21 is not in the apt sources of host db2" in str(err.value)
    assert "15.20-0+deb12u1, 15.18-0+deb12u1" in str(err.value)


def test_gaps_are_summed_over_the_whole_operation() -> None:
    attempts = [(0.0, 0.1, True), (1.0, 1.1, False), (2.0, 2.1, True), (3.0, 3.1, True),
                (4.0, 4.1, False), (5.0, 5.1, False), (6.0, 6.5, True)]  # fmt: skip
    assert gap_windows(attempts) == [(1.0, 1.1), (4.0, 2.5)]
    assert gap_windows([(0.0, 0.1, False), (1.0, 1.2, False)]) == [(0.0, 1.2)]  # never back
    assert gap_windows([]) == []


def test_rolling_cost_counts_failures_and_downtime() -> None:
    w = [WriteAttempt(seq=i, sent=i, done=i + 0.01, outcome=o) for i, o in
         enumerate([Outcome.ok, Outcome.failed, Outcome.unknown, Outcome.ok])]  # fmt: skip
    r = [ReadAttempt(at=0, ok=True), ReadAttempt(at=1, ok=False), ReadAttempt(at=2, ok=True)]
    cost = rolling_cost(ProbeLog(run="x", started_at=datetime.now(UTC), writes=w, reads=r))
    assert cost == RollingCost(write_down_s=2.01, write_gaps=[(1.0, 2.01)], failed_writes=2,
                               failed_reads=1, read_down_s=1.0)  # fmt: skip


def test_only_the_postgresql_packages_can_be_upgraded_so_far() -> None:
    spec = reference_spec("u")
    UpgradeInput(spec=spec, packages={"postgresql-15": "15.20", "postgresql-client-15": "15.20"})
    with pytest.raises(ValidationError) as err:
        UpgradeInput(spec=spec, packages={"patroni": "3.0.4"})
    assert "PostgreSQL 15 packages" in str(err.value) and "not patroni" in str(err.value)
    with pytest.raises(ValidationError):
        UpgradeInput(spec=spec, packages={})


def test_the_summary_names_each_member_and_the_write_downtime() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    report = UpgradeReport(
        cluster="lab", workflow_id="pgha-op:lab", started_at=now, finished_at=now, passed=True,
        packages={"postgresql-15": "15.20-0+deb12u1"}, versions_after={"db1": "15.20"},
        members=[MemberOutcome(member="db1", result="upgraded", version_before="15.18",
                               version_after="15.20")],
        old_leader="db1", new_leader="db2",
        cost=RollingCost(write_down_s=1.8, write_gaps=[(30.0, 1.8)], failed_writes=4),
    )  # fmt: skip
    text = upgrade_summary(report)
    assert text.startswith("DONE upgrade of lab to PostgreSQL 15.20: writes down 1.8 s")
    assert "packages: postgresql-15 15.20-0+deb12u1" in text
    assert "db1: upgraded (15.18 -> 15.20)" in text
    assert "1.8 s at +30 s" in text and "leader db1 -> db2" in text


def test_the_cluster_view_carries_each_members_tags_from_the_dcs() -> None:
    from pgha.hosts.facts.patroni import parse_cluster

    body = (
        '{"members": [{"name": "db1", "role": "leader", "state": "running", "timeline": 7},'
        ' {"name": "db2", "role": "replica", "state": "running", "timeline": 7, "lag": 0,'
        ' "tags": {"nofailover": true, "noloadbalance": true}}]}'
    )
    db1, db2 = parse_cluster(body)
    assert db1.tags == {} and db2.tags == {"nofailover": True, "noloadbalance": True}


def test_upgrade_takes_exactly_one_component_and_restart_all_only_with_etcd() -> None:
    runner = CliRunner()
    both = runner.invoke(app, ["run", "upgrade", "--cluster", "lab", "--postgres", "15.20",
                               "--etcd", "3.4.23"])  # fmt: skip
    assert both.exit_code == 2 and "exactly one of" in both.output
    stray = runner.invoke(app, ["run", "upgrade", "--cluster", "lab", "--postgres", "15.20",
                                "--restart-all"])  # fmt: skip
    assert stray.exit_code == 2 and "--restart-all goes with --etcd" in stray.output


def test_the_etcd_upgrade_line_names_both_leaders_and_the_write_downtime() -> None:
    t = datetime(2026, 12, 3, tzinfo=UTC)
    v = EtcdMemberVersion(installed="3.4.23-4+b4", running="3.4.23")
    report = EtcdUpgradeReport(
        cluster="lab", workflow_id="w", started_at=t, finished_at=t, version="3.4.23-4+b4",
        restarted=["db2", "db3", "db1"], leader_before="db1", leader_after="db2",
        versions_before={"db1": v}, versions_after={"db1": v}, patroni_leader_before="db1",
        patroni_leader_after="db1", cost=RollingCost(write_down_s=0.0),
    )  # fmt: skip
    line = result_text(ETCD_UPGRADE.name, report.model_dump(mode="json"))
    assert line == (
        "etcd 3.4.23-4+b4: restarted db2, db3, db1 (etcd leader db1 -> db2); Patroni leader "
        "db1 -> db1; writes down 0.00 s"
    )
