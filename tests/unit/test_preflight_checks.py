"""Preflight judgements over facts: what passes, warns, and blocks."""

from __future__ import annotations

from pgha.checks.preflight import (
    HostFacts,
    Severity,
    evaluate,
    host_check_input,
    port_claims,
    release_urls,
)
from pgha.spec import PackageSource, Role
from tests.specs import reference_spec

SPEC = reference_spec()


def facts(**changes: object) -> HostFacts:
    base = HostFacts(
        os_id="debian", os_version="12", os_codename="bookworm",
        os_pretty="Debian GNU/Linux 12 (bookworm)", cpus=2, memory_mb=4096,
        disks={"/var/lib/postgresql/15/main": 40.0}, pid1="systemd", systemd_state="running",
        time_synchronized=True, time_detail="NTPSynchronized=yes", busy_ports={22: "sshd"},
        source_urls=["http://deb.debian.org/debian/dists/bookworm/InRelease"], source_errors={},
    )  # fmt: skip
    return base.model_copy(update=changes)


def blocking(host: str, **changes: object) -> list[str]:
    found = evaluate(host_check_input(SPEC, host), facts(**changes))
    return [f"{f.check}: {f.message}" for f in found if f.severity == Severity.blocking]


def test_evaluate_healthy_db_host_has_no_blocking() -> None:
    assert blocking("db1") == []


def test_evaluate_port_held_by_stranger_blocks() -> None:
    assert blocking("db1", busy_ports={5432: "nginx"}) == [
        "ports: port 5432 (needed by postgres) is in use by nginx; stop it or change the "
        "port in the spec"
    ]


def test_evaluate_port_held_by_own_service_is_fine_on_rerun() -> None:
    assert blocking("db1", busy_ports={5432: "postgres", 2379: "etcd", 8008: "patroni"}) == []


def test_evaluate_no_systemd_blocks() -> None:
    assert blocking("proxy1", pid1="bash", systemd_state=None) == [
        "systemd: PID 1 is 'bash', not systemd; pgha runs every service as a systemd unit"
    ]


def test_evaluate_small_memory_blocks_db_but_warns_proxy() -> None:
    assert blocking("db1", memory_mb=512)[0].startswith("memory: 512 MB of memory")
    assert blocking("proxy1", memory_mb=512) == []


def test_evaluate_unreachable_source_blocks_with_reason() -> None:
    url = "http://deb.debian.org/debian/dists/bookworm/InRelease"
    assert blocking("db2", source_errors={url: "Could not resolve host"}) == [
        f"packages: {url} unreachable: Could not resolve host; check the network or set "
        "packages.mirror / packages.apt_proxy"
    ]


def test_evaluate_unknown_time_sync_only_warns() -> None:
    found = evaluate(host_check_input(SPEC, "db1"), facts(time_synchronized=None))
    (time,) = [f for f in found if f.check == "time"]
    assert time.severity == Severity.warning


def test_evaluate_non_debian_blocks() -> None:
    assert blocking("db1", os_id="rocky", os_pretty="Rocky Linux 9")[0] == (
        "os: Rocky Linux 9: pgha installs with apt on Debian; this OS is not supported"
    )


def test_port_claims_follow_roles() -> None:
    assert [c.port for c in port_claims(SPEC, [Role.postgres, Role.etcd])] == [
        5432,
        8008,
        2379,
        2380,
    ]
    assert [c.port for c in port_claims(SPEC, [Role.haproxy])] == [5000, 5001, 7000]


def test_release_urls_debian_uses_host_sources_for_codename() -> None:
    configured = [
        ("http://deb.debian.org/debian", "bookworm"),
        ("http://deb.debian.org/debian", "bookworm-updates"),
        ("http://deb.debian.org/debian-security", "bookworm-security"),
        ("https://deb.nodesource.com/node_20.x", "nodistro"),
    ]
    assert release_urls(PackageSource.debian, "bookworm", 15, None, configured) == [
        "http://deb.debian.org/debian-security/dists/bookworm-security/InRelease",
        "http://deb.debian.org/debian/dists/bookworm-updates/InRelease",
        "http://deb.debian.org/debian/dists/bookworm/InRelease",
    ]


def test_release_urls_pgdg_and_mirror() -> None:
    assert release_urls(PackageSource.pgdg, "bookworm", 15, None, []) == [
        "https://apt.postgresql.org/pub/repos/apt/dists/bookworm-pgdg/InRelease"
    ]
    assert release_urls(PackageSource.debian, "bookworm", 15, "http://m/debian/", []) == [
        "http://m/debian/dists/bookworm/InRelease"
    ]


def test_evaluate_unnamed_holder_with_own_unit_active_is_fine() -> None:
    assert blocking("proxy1", busy_ports={7000: "?"}, active_units=["haproxy"]) == []


def test_evaluate_unnamed_holder_without_unit_blocks() -> None:
    assert blocking("proxy1", busy_ports={7000: "?"})[0].startswith(
        "ports: port 7000 (needed by haproxy) is in use by a process pgha cannot name"
    )
