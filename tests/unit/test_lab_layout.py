"""The lab layout: names, addresses and roles per host count, and the spec it writes."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from pgha.errors import LabError
from pgha.lab.layout import (
    SPEC_HEADER,
    host_roles,
    is_generated,
    lab_layout,
    lab_spec,
    lab_subnet,
    spec_data,
)
from pgha.spec import ClusterSpec, Role

SUBNET = ipaddress.IPv4Network("10.77.0.0/24")


def _layout(count: int) -> dict[str, tuple[str, list[str]]]:
    return {p.name: (str(p.address), [r.value for r in p.roles]) for p in lab_layout(count, SUBNET)}


def _spec(count: int, subnet: ipaddress.IPv4Network = SUBNET) -> tuple[dict[str, Any], ClusterSpec]:
    data = spec_data(lab_layout(count, subnet), subnet, "/s/lab/id_ed25519", "/s/lab/known_hosts")
    return data, lab_spec(data, "clusters/lab.yaml")


def test_lab_layout_six_hosts_is_reference_architecture() -> None:
    assert _layout(6) == {
        "db1": ("10.77.0.11", ["postgres", "etcd"]),
        "db2": ("10.77.0.12", ["postgres", "etcd"]),
        "db3": ("10.77.0.13", ["postgres", "etcd"]),
        "proxy1": ("10.77.0.21", ["haproxy"]),
        "proxy2": ("10.77.0.22", ["haproxy"]),
        "backup1": ("10.77.0.31", ["backup-repo", "verify-target"]),
    }


def test_lab_layout_five_hosts_has_no_backup_host() -> None:
    assert list(_layout(5)) == ["db1", "db2", "db3", "proxy1", "proxy2"]


def test_lab_layout_seven_hosts_moves_verify_target_to_verify1() -> None:
    layout = _layout(7)
    assert layout["backup1"] == ("10.77.0.31", ["backup-repo"])
    assert layout["verify1"] == ("10.77.0.32", ["verify-target"])


def test_lab_layout_eight_hosts_adds_db4_without_etcd() -> None:
    layout = _layout(8)
    assert list(layout) == ["db1", "db2", "db3", "db4", "proxy1", "proxy2", "backup1", "verify1"]
    assert layout["db4"] == ("10.77.0.14", ["postgres"])


def test_lab_layout_thirteen_hosts_fills_db9_below_proxies() -> None:
    assert _layout(13)["db9"] == ("10.77.0.19", ["postgres"])


@pytest.mark.parametrize("count", [0, 3, 4])
def test_lab_layout_fewer_than_five_is_rejected_with_reason(count: int) -> None:
    with pytest.raises(LabError, match=r"at least 5 hosts.*etcd majority"):
        lab_layout(count, SUBNET)


def test_lab_layout_fourteen_is_rejected() -> None:
    with pytest.raises(LabError, match="at most 13"):
        lab_layout(14, SUBNET)


@pytest.mark.parametrize("count", [5, 6, 7, 8, 13])
def test_spec_data_any_supported_count_validates(count: int) -> None:
    data, spec = _spec(count)
    assert spec.cluster == "lab"
    assert [h.name for h in spec.hosts] == [h["name"] for h in data["hosts"]]
    assert spec.vip is not None and str(spec.vip.address) == "10.77.0.100/24"
    assert spec.ssh.key_file == "/s/lab/id_ed25519"
    assert spec.ssh.known_hosts == "/s/lab/known_hosts"
    assert spec.postgres.version == 15
    assert (spec.patroni.ttl, spec.patroni.loop_wait, spec.patroni.retry_timeout) == (30, 10, 10)
    assert spec.databases[0].name == "app" and spec.databases[0].owner == "app"
    assert spec.roles[0].password is not None and spec.roles[0].password.secret == "lab-app"
    assert spec.packages.pins == {}


def test_spec_data_five_hosts_disables_backup_and_verify() -> None:
    _, spec = _spec(5)
    assert spec.backup.enabled is False
    assert spec.backup.schedule.verify_restore is None
    assert not spec.hosts_with(Role.backup_repo)


def test_spec_data_six_hosts_enables_backup() -> None:
    _, spec = _spec(6)
    assert spec.backup.enabled is True
    assert [h.name for h in spec.hosts_with(Role.verify_target)] == ["backup1"]


def test_spec_data_other_subnet_moves_hosts_and_vip() -> None:
    subnet = ipaddress.IPv4Network("192.168.50.0/24")
    _, spec = _spec(6, subnet)
    assert str(spec.host("db1").address) == "192.168.50.11"
    assert spec.vip is not None and str(spec.vip.address) == "192.168.50.100/24"


def test_lab_subnet_env_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGHA_LAB_SUBNET", raising=False)
    assert lab_subnet() == SUBNET
    monkeypatch.setenv("PGHA_LAB_SUBNET", "10.99.0.0/24")
    assert str(lab_subnet()) == "10.99.0.0/24"


@pytest.mark.parametrize("value", ["10.77.0.1/24", "nonsense", "10.77.0.0/26"])
def test_lab_subnet_bad_value_is_rejected(value: str) -> None:
    with pytest.raises(LabError, match="PGHA_LAB_SUBNET"):
        lab_subnet(value)


def test_host_roles_backup1_is_verify_target_only_without_verify1() -> None:
    assert host_roles("backup1", ["backup1"]) == [Role.backup_repo, Role.verify_target]
    assert host_roles("backup1", ["backup1", "verify1"]) == [Role.backup_repo]


def test_is_generated_header_only_matches_lab_files() -> None:
    assert is_generated(SPEC_HEADER + "cluster: lab\n")
    assert not is_generated("cluster: lab\n")
    assert not is_generated("# my own lab\n" + SPEC_HEADER)
