"""The database-side activities without hosts: packages per role, apt/postgresql-common setup,
etcd membership judgement, and how activities turn host faults into retryable or
non-retryable failures (FakeHost behind open_host, run in an ActivityEnvironment)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from pgha.activities import etcd, packages, patroni
from pgha.activities.converge import step_result
from pgha.hosts.facts.etcd import Member, parse_member_list
from pgha.hosts.ops import package_setup
from pgha.hosts.result import Outcome
from pgha.spec import ClusterSpec, parse_spec
from pgha.steps import HostStep
from tests.specs import reference_data, reference_spec
from tests.unit.fakes import FakeHost
from tests.unit.test_ops_etcd import HEALTH_ALL, MEMBER_LIST, STATUS
from tests.unit.test_ops_patroni import CLUSTER, REPLICATION

HEADER = "Managed by pgha (cluster prod); changes are overwritten."


def spec_with(**changes: Any) -> ClusterSpec:
    data = reference_data()
    data.update(changes)
    return parse_spec(data, "test")


# --- packages --------------------------------------------------------------------------------


def test_wanted_packages_by_role() -> None:
    spec = reference_spec()
    assert list(packages.wanted_packages(spec, "db1")) == [
        "postgresql-15", "postgresql-client-15", "patroni", "pgbackrest", "python3-psycopg2",
        "etcd-server", "etcd-client",
    ]  # fmt: skip
    assert list(packages.wanted_packages(spec, "proxy1")) == ["haproxy", "keepalived"]
    assert list(packages.wanted_packages(spec, "backup1")) == [
        "pgbackrest", "postgresql-15", "postgresql-client-15",
    ]  # fmt: skip
    pooled = spec_with(pgbouncer={"enabled": True})
    assert "pgbouncer" in packages.wanted_packages(pooled, "proxy2")


def test_wanted_packages_client_follows_the_server_pin() -> None:
    spec = spec_with(packages={"pins": {"postgresql-15": "15.18-0+deb12u1", "patroni": "3.0.2-1"}})
    wanted = packages.wanted_packages(spec, "db2")
    assert wanted["postgresql-15"] == wanted["postgresql-client-15"] == "15.18-0+deb12u1"
    assert wanted["patroni"] == "3.0.2-1" and wanted["pgbackrest"] is None


def test_wanted_packages_other_sources_are_refused() -> None:
    with pytest.raises(ValueError, match="pgdg is not supported yet"):
        packages.wanted_packages(spec_with(packages={"source": "pgdg"}), "db1")


def test_createcluster_conf_keeps_other_settings_and_disables_main() -> None:
    debian = "# comment\n#create_main_cluster = true\nstart_conf = 'auto'\n"
    assert not package_setup.main_cluster_disabled(debian)
    new = package_setup.without_main_cluster(debian, HEADER)
    assert new == "# comment\n#create_main_cluster = true\nstart_conf = 'auto'\n" + (
        "create_main_cluster = false\n"
    )
    assert package_setup.main_cluster_disabled(new)
    assert package_setup.main_cluster_disabled(
        "create_main_cluster = true\ncreate_main_cluster = off"
    )
    assert package_setup.without_main_cluster(None, HEADER) == (
        f"# {HEADER}\ncreate_main_cluster = false\n"
    )


async def test_ensure_no_main_cluster_already_off_is_noop() -> None:
    h = FakeHost().on("cat", "present\ncreate_main_cluster = false\n")
    out = await package_setup.ensure_no_main_cluster(h, HEADER)
    assert not out.changed and len(h.commands) == 1


async def test_ensure_no_main_cluster_on_a_bare_host_writes_the_file() -> None:
    h = FakeHost().on("present; cat", "absent\n").on("pgha-file-state", "absent\n")
    h.on("install -d").on("mktemp")
    out = await package_setup.ensure_no_main_cluster(h, HEADER)
    assert out.summary == (
        "set create_main_cluster = false in /etc/postgresql-common/createcluster.conf"
    )
    assert h.calls[-1].input == f"# {HEADER}\ncreate_main_cluster = false\n"


def test_apt_proxy_conf_sets_http_and_https_and_refuses_injection() -> None:
    text = package_setup.apt_proxy_conf("http://10.0.0.1:3142", HEADER)
    assert 'Acquire::http::Proxy "http://10.0.0.1:3142";' in text
    assert 'Acquire::https::Proxy "http://10.0.0.1:3142";' in text
    with pytest.raises(ValueError):
        package_setup.apt_proxy_conf('http://x";\nAPT::Get::AllowUnauthenticated "true', HEADER)


async def test_ensure_apt_proxy_none_wanted_none_present_is_noop() -> None:
    out = await package_setup.ensure_apt_proxy(FakeHost().on("rm -f"), None, HEADER)
    assert out.summary == "no apt proxy wanted, and none configured by pgha"


async def test_finish_interrupted_dpkg_only_when_its_journal_has_entries() -> None:
    clean = await package_setup.finish_interrupted_dpkg(FakeHost().on("dpkg/updates", ""))
    assert not clean.changed
    running = FakeHost().on("dpkg/updates", "busy\n")
    assert not (await package_setup.finish_interrupted_dpkg(running)).changed
    assert len(running.commands) == 1
    h = FakeHost().on("dpkg/updates", "0001\n").on("dpkg --force-confdef")
    assert (await package_setup.finish_interrupted_dpkg(h)).changed


# --- etcd membership -------------------------------------------------------------------------


def lab() -> ClusterSpec:
    """The reference layout at the lab's addresses, which the recorded outputs carry."""
    data = reference_data("lab")
    for h in data["hosts"]:
        h["address"] = h["address"].replace("10.0.0.", "10.77.0.")
    data["vip"] = {"address": "10.77.0.100/24"}
    return parse_spec(data, "test")


def members(text: str = MEMBER_LIST) -> list[Member]:
    return parse_member_list(text)


def test_membership_matching_spec_has_no_problems() -> None:
    assert etcd.membership_problems(lab(), members()) == ([], False)


def test_membership_unstarted_member_is_transient_extra_member_is_not() -> None:
    unstarted = MEMBER_LIST.replace('"name":"db3",', '"name":"",')
    assert etcd.membership_problems(lab(), members(unstarted)) == (
        ["db3 (http://10.77.0.13:2380) was added but has not started yet"],
        True,
    )
    extra = MEMBER_LIST.replace("10.77.0.13:2380", "10.77.0.99:2380")
    problems, transient = etcd.membership_problems(lab(), members(extra))
    assert not transient
    assert problems == [
        "db3 (http://10.77.0.13:2380) is not a member",
        "db3 (http://10.77.0.99:2380) is not in the spec",
    ]


def test_member_plan_uses_renderers_data_dir_and_header() -> None:
    plan = etcd.member_plan(lab(), "db2", "tok")
    assert (plan.client_url, plan.data_dir, plan.marker_path) == (
        "http://10.77.0.12:2379", "/var/lib/etcd/pgha-lab", "/var/lib/etcd/pgha-lab.pgha-token",
    )  # fmt: skip
    assert plan.env_content.startswith(plan.managed_header + "\n")


def test_step_result_lists_changes_or_every_reason() -> None:
    same = [Outcome.unchanged("a is fine"), Outcome.unchanged("b is fine")]
    assert step_result("db1", same).summary == "a is fine; b is fine"
    mixed = [Outcome.unchanged("a is fine"), Outcome.made("wrote b", ["mv"])]
    r = step_result("db1", mixed)
    assert r.changed and r.summary == "wrote b"


# --- activities: failure translation ------------------------------------------------------------


def patch_host(monkeypatch: pytest.MonkeyPatch, module: Any, host: FakeHost) -> None:
    @asynccontextmanager
    async def fake_open(_target: Any) -> AsyncIterator[FakeHost]:
        yield host

    monkeypatch.setattr(module, "open_host", fake_open)


async def run(fn: Callable[..., Any], spec: ClusterSpec, host: str, **params: str) -> Any:
    return await ActivityEnvironment().run(fn, HostStep(spec=spec, host=host, params=params))


async def test_check_cluster_healthy_reports_leader_and_members(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = (FakeHost().on("endpoint health", HEALTH_ALL).on("member list", MEMBER_LIST)
         .on("endpoint status", STATUS))  # fmt: skip
    patch_host(monkeypatch, etcd, h)
    r = await run(etcd.check_cluster, lab(), "db1")
    assert not r.changed
    assert r.facts == {
        "leader": "db1",
        "members": ["db1", "db2", "db3"],
        "health": {"db1": True, "db2": True, "db3": True},
    }


async def test_check_cluster_unhealthy_member_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    sick = HEALTH_ALL.replace('"http://10.77.0.13:2379","health":true', '"x":1')
    h = (FakeHost().on("endpoint health", sick, exit_code=1).on("member list", MEMBER_LIST)
         .on("endpoint status", STATUS))  # fmt: skip
    patch_host(monkeypatch, etcd, h)
    with pytest.raises(RuntimeError, match=r"db3 .* unhealthy"):
        await run(etcd.check_cluster, lab(), "db1")


async def test_check_cluster_foreign_member_is_permanent(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = MEMBER_LIST.replace("10.77.0.13:2380", "10.77.0.99:2380")
    h = (FakeHost().on("endpoint health", HEALTH_ALL).on("member list", extra)
         .on("endpoint status", STATUS))  # fmt: skip
    patch_host(monkeypatch, etcd, h)
    with pytest.raises(ApplicationError) as caught:
        await run(etcd.check_cluster, lab(), "db1")
    assert caught.value.type == "EtcdMembership" and caught.value.non_retryable


async def test_ensure_member_without_token_is_a_permanent_input_error() -> None:
    with pytest.raises(ApplicationError) as caught:
        await run(etcd.ensure_member, lab(), "db1")
    assert caught.value.type == "InvalidStepInput" and caught.value.non_retryable


async def test_ensure_member_on_a_host_without_etcd_role_is_permanent() -> None:
    with pytest.raises(ApplicationError) as caught:
        await run(etcd.ensure_member, lab(), "proxy1", token="t")
    assert caught.value.type == "InvalidSpec" and "does not have role etcd" in caught.value.message


async def test_packages_missing_version_is_permanent(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = "E: Version '15.1-1' for 'postgresql-15' was not found"
    h = (
        FakeHost()
        .on("rm -f")
        .on("present; cat", "present\ncreate_main_cluster = false\n")
        .on("dpkg/updates", "")
        .on("dpkg-query", "", stderr="dpkg-query: no packages found matching patroni", exit_code=1)
        .on("apt-get -o DPkg::Lock::Timeout=60 update")
        .on("apt-get", stderr=stderr, exit_code=100)
    )
    patch_host(monkeypatch, packages, h)
    spec = spec_with(packages={"pins": {"postgresql-15": "15.1-1"}})
    with pytest.raises(ApplicationError) as caught:
        await run(packages.ensure_host, spec, "db1")
    assert caught.value.type == "PackageNotFound" and caught.value.non_retryable
    assert "Version '15.1-1' for 'postgresql-15' was not found" in caught.value.message


async def test_wait_leader_gives_up_transiently_with_what_it_saw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(patroni, "WAIT_S", 0.0)
    no_leader = CLUSTER.replace('"role": "leader"', '"role": "replica"')
    patch_host(monkeypatch, patroni, FakeHost().on("python3", no_leader))
    with pytest.raises(RuntimeError, match="reports no running leader after 0 s"):
        await run(patroni.wait_leader, lab(), "db1")


async def test_wait_leader_reports_leader_and_timeline(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_host(monkeypatch, patroni, FakeHost().on("python3", CLUSTER))
    r = await run(patroni.wait_leader, lab(), "db2")
    assert r.facts == {"leader": "db1", "timeline": 1} and not r.changed


async def test_wait_replicas_reports_members_with_the_leaders_lag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patch_host(monkeypatch, patroni, FakeHost().on("python3", CLUSTER).on("psql", REPLICATION))
    r = await run(patroni.wait_replicas, lab(), "db1")
    assert r.summary == "2 replicas streaming from db1, replay lag 0"
    assert r.facts["members"][1] == {
        "name": "db2", "role": "replica", "state": "running", "lag": 0, "timeline": 1,
        "replay_lag_bytes": 0,
    }  # fmt: skip


async def test_wait_replicas_not_connected_gives_up_transiently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(patroni, "WAIT_S", 0.0)
    patch_host(
        monkeypatch, patroni, FakeHost().on("python3", CLUSTER).on("psql", "db2\tstreaming\t0\n")
    )
    with pytest.raises(RuntimeError, match="db3 is not connected on the leader"):
        await run(patroni.wait_replicas, lab(), "db1")
