"""Cluster spec validation: good specs load with defaults; each bad one says what and where."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pgha.errors import SpecError
from pgha.spec import Role, load_spec, parse_spec, resolve_spec_path
from tests.specs import REFERENCE

ROOT = Path(__file__).parents[2]

GOOD = REFERENCE


def bad(mutate: Any) -> list[str]:
    data = copy.deepcopy(GOOD)
    mutate(data)
    with pytest.raises(SpecError) as caught:
        parse_spec(data, "clusters/prod.yaml")
    assert str(caught.value).startswith("clusters/prod.yaml: the cluster spec is not valid:")
    return caught.value.problems


def test_spec_reference_layout_loads_with_defaults() -> None:
    spec = parse_spec(GOOD, "x")
    assert spec.postgres.version == 15
    assert spec.postgres.data_path == "/var/lib/postgresql/15/main"
    assert spec.patroni.ttl == 30 and spec.patroni.loop_wait == 10
    assert [h.name for h in spec.hosts_with(Role.etcd)] == ["db1", "db2", "db3"]
    assert spec.stanza == "prod"
    assert spec.target("db1").user == "root"


def test_spec_shipped_example_is_valid() -> None:
    spec = load_spec(str(ROOT / "deploy/clusters/example.yaml"))
    assert spec.cluster == "prod"
    assert spec.target("backup1").port == 2222  # per-host override
    assert spec.target("pg1").port == 22


def test_spec_host_ssh_override_beats_cluster_default() -> None:
    data = copy.deepcopy(GOOD)
    data["ssh"] = {"user": "ops", "sudo": True}
    data["hosts"][0]["ssh"] = {"user": "admin"}
    spec = parse_spec(data, "x")
    assert (spec.target("db1").user, spec.target("db1").sudo) == ("admin", True)
    assert spec.target("db2").user == "ops"


def test_spec_unknown_key_rejected_with_path() -> None:
    problems = bad(lambda d: d["hosts"][1].update(rolez=["postgres"]))
    assert problems == [
        "hosts[1].rolez: unknown key; check its spelling and level "
        "(see deploy/clusters/example.yaml)"
    ]


def test_spec_unknown_role_rejected_with_choices() -> None:
    problems = bad(lambda d: d["hosts"][0].update(roles=["postgress"]))
    assert problems[0].startswith("hosts[0].roles[0]: Input should be 'postgres', 'etcd'")


def test_spec_even_etcd_count_rejected() -> None:
    problems = bad(lambda d: d["hosts"][3]["roles"].append("etcd"))
    assert problems == [
        "hosts: 4 host(s) have role etcd (db1, db2, db3, proxy1); etcd needs an odd number "
        "of members, at least 3, to keep a majority when one is lost"
    ]


def test_spec_one_postgres_node_rejected() -> None:
    def one_pg(d: dict[str, Any]) -> None:
        d["hosts"][1]["roles"] = ["etcd"]
        d["hosts"][2]["roles"] = ["etcd"]

    assert bad(one_pg) == [
        "hosts: 1 host(s) have role postgres (db1); high availability needs at least 2"
    ]


def test_spec_duplicate_name_and_address_rejected() -> None:
    def dup(d: dict[str, Any]) -> None:
        d["hosts"][1]["name"] = "db1"
        d["hosts"][2]["address"] = "10.0.0.11"

    problems = bad(dup)
    assert "hosts[0], hosts[1].name: 'db1' is used by 2 hosts; each host needs its own name" in (
        problems
    )
    assert (
        "hosts[0], hosts[2].address: '10.0.0.11' is used by 2 hosts; each host needs its own "
        "address" in problems
    )


def test_spec_vip_outside_proxy_subnet_rejected() -> None:
    problems = bad(lambda d: d.update(vip={"address": "10.9.0.100/24"}))
    assert problems == [
        "vip.address: 10.9.0.100/24 is not in the subnet of haproxy host proxy1 (10.0.0.21); "
        "the VIP must be on the proxies' network",
        "vip.address: 10.9.0.100/24 is not in the subnet of haproxy host proxy2 (10.0.0.22); "
        "the VIP must be on the proxies' network",
    ]


def test_spec_vip_equal_to_host_address_rejected() -> None:
    problems = bad(lambda d: d.update(vip={"address": "10.0.0.21/24"}))
    assert problems == ["vip.address: 10.0.0.21 is the address of host proxy1 (hosts[3])"]


def test_spec_vip_missing_with_proxies_rejected() -> None:
    assert bad(lambda d: d.pop("vip")) == [
        "vip: required when hosts have role haproxy (keepalived moves it)"
    ]


def test_spec_bare_minimum_layout_accepted() -> None:
    """The seed's bare minimum: 2 database nodes, 3 etcd, no proxies, no VIP."""
    data = {
        "cluster": "mini",
        "hosts": [
            {"name": "db1", "address": "10.0.0.11", "roles": ["postgres", "etcd"]},
            {"name": "db2", "address": "10.0.0.12", "roles": ["postgres", "etcd"]},
            {"name": "witness", "address": "10.0.0.13", "roles": ["etcd"]},
        ],
        "backup": {"enabled": False, "schedule": {"verify_restore": None}},
    }
    spec = parse_spec(data, "x")
    assert spec.vip is None


def test_spec_single_proxy_rejected() -> None:
    problems = bad(lambda d: d["hosts"].pop(4))
    assert problems[0].startswith("hosts: only proxy1 has role haproxy;")


def test_spec_backup_repo_on_postgres_node_rejected() -> None:
    problems = bad(lambda d: d["hosts"][0]["roles"].append("backup-repo"))
    assert (
        "hosts[0].roles: db1 is both backup-repo and postgres; a repository on a database "
        "node is lost with that node" in problems
    )


def test_spec_verify_target_on_cluster_member_rejected() -> None:
    problems = bad(lambda d: d["hosts"][0]["roles"].append("verify-target"))
    assert problems == [
        "hosts[0].roles: db1 is both verify-target and postgres; restores are verified away "
        "from cluster members"
    ]


def test_spec_patroni_timing_inconsistent_rejected() -> None:
    problems = bad(lambda d: d.update(patroni={"ttl": 20, "loop_wait": 10, "retry_timeout": 10}))
    assert problems == [
        "patroni: loop_wait + 2*retry_timeout (10 + 2*10) must not exceed ttl (20), or a "
        "leader can lose its lock while still working"
    ]


def test_spec_patroni_pypi_version_must_be_a_release() -> None:
    for wrong in ("3.0", "latest", "2.1.7", "3.0.4-1"):
        assert bad(lambda d, v=wrong: d.update(patroni={"pypi_version": v})) == [
            f"patroni.pypi_version: {wrong!r} is not a Patroni 3.x or 4.x release: write it as "
            "on PyPI, e.g. 3.0.4"
        ]
    ok = copy.deepcopy(GOOD) | {"patroni": {"pypi_version": "3.0.4"}}
    assert parse_spec(ok, "x").patroni.pypi_version == "3.0.4"
    assert parse_spec(GOOD, "x").patroni.pypi_version is None


def test_spec_port_clash_rejected() -> None:
    problems = bad(lambda d: d.update(haproxy={"stats_port": 8008}))
    assert problems == ["haproxy.stats_port: port 8008 is already used by patroni.restapi_port"]


def test_spec_bad_cron_and_bad_name_rejected() -> None:
    def both(d: dict[str, Any]) -> None:
        d["cluster"] = "Prod_1"
        d["backup"] = {"schedule": {"full": "every sunday"}}

    problems = bad(both)
    assert (
        problems[0]
        == "cluster: 'Prod_1' is not a valid name: use lower-case letters, digits and '-'"
    )
    assert problems[1].startswith("backup.schedule.full: String should match pattern")


def test_spec_secret_ref_needs_exactly_one_source() -> None:
    problems = bad(lambda d: d.update(secrets={"superuser": {"env": "A", "file": "/x"}}))
    assert problems == [
        "secrets.superuser: give exactly one of secret, env or file (got env, file)"
    ]


def test_spec_database_owner_must_be_a_role() -> None:
    problems = bad(lambda d: d.update(databases=[{"name": "app", "owner": "app"}]))
    assert problems == ["databases[0].owner: role 'app' is not in roles; add it to roles"]


def test_spec_missing_file_names_path_and_hint(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec("lab", tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}/lab.yaml: the cluster spec is not valid:\n"
        "  - no such file (run `pgha lab up` to create the lab's)"
    )


def test_spec_invalid_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("cluster: x\nhosts: [\n")
    with pytest.raises(SpecError) as caught:
        load_spec(str(path))
    assert "line 3, column 1: not valid YAML" in caught.value.problems[0]


def test_spec_name_resolves_to_clusters_dir_and_path_is_kept() -> None:
    assert resolve_spec_path("prod") == Path("clusters/prod.yaml")
    assert resolve_spec_path("./x/prod.yaml") == Path("./x/prod.yaml")
