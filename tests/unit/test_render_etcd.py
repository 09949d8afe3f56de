"""etcd's environment file for Debian's etcd-server 3.4."""

from __future__ import annotations

import pytest

from pgha.render import etcd_client_urls, etcd_env
from pgha.spec import parse_spec
from tests.specs import reference_data, reference_spec


def env_of(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {k: v for k, v in pairs}


def test_etcd_env_names_the_member_and_lists_every_member() -> None:
    env = env_of(etcd_env(reference_spec(), "db2", token="tok-1").content)
    assert env["ETCD_NAME"] == "db2"
    assert env["ETCD_DATA_DIR"] == "/var/lib/etcd/pgha-prod"
    assert env["ETCD_LISTEN_PEER_URLS"] == "http://10.0.0.12:2380"
    assert env["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "http://10.0.0.12:2380"
    assert env["ETCD_LISTEN_CLIENT_URLS"] == "http://10.0.0.12:2379,http://127.0.0.1:2379"
    assert env["ETCD_ADVERTISE_CLIENT_URLS"] == "http://10.0.0.12:2379"
    assert env["ETCD_INITIAL_CLUSTER"] == (
        "db1=http://10.0.0.11:2380,db2=http://10.0.0.12:2380,db3=http://10.0.0.13:2380"
    )
    assert env["ETCD_INITIAL_CLUSTER_TOKEN"] == "tok-1"
    assert env["ETCD_INITIAL_CLUSTER_STATE"] == "new"
    assert env["ETCD_ENABLE_V2"] == "false"


def test_etcd_env_existing_state_and_ports_from_spec() -> None:
    data = reference_data()
    data["etcd"] = {"client_port": 12379, "peer_port": 12380}
    spec = parse_spec(data, "test")
    env = env_of(etcd_env(spec, "db1", token="t", state="existing").content)
    assert env["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    assert env["ETCD_ADVERTISE_CLIENT_URLS"] == "http://10.0.0.11:12379"
    assert "db3=http://10.0.0.13:12380" in env["ETCD_INITIAL_CLUSTER"]
    assert etcd_client_urls(spec)[0] == "http://10.0.0.11:12379"


def test_etcd_env_data_dir_is_never_debians_default() -> None:
    # The package's first start initialises /var/lib/etcd/default as a lone member.
    for cluster in ("prod", "default"):
        env = env_of(etcd_env(reference_spec(cluster), "db1", token="t").content)
        assert env["ETCD_DATA_DIR"] != "/var/lib/etcd/default"


@pytest.mark.parametrize("token", ["", "a b", "x\nETCD_NAME=evil", "a;b"])
def test_etcd_env_refuses_unsafe_tokens(token: str) -> None:
    with pytest.raises(ValueError, match="token"):
        etcd_env(reference_spec(), "db1", token=token)


def test_etcd_env_refuses_a_host_without_role_etcd() -> None:
    with pytest.raises(ValueError, match="proxy1"):
        etcd_env(reference_spec(), "proxy1", token="t")
