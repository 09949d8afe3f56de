"""Patroni's config: valid YAML in the shape Patroni 3.0 reads, values from the spec."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from pgha.render import MissingSecretError, RenderSecrets, dynamic_config, patroni_config
from pgha.render.postgres import DCS_ONLY
from pgha.spec import ClusterSpec, Role, parse_spec
from tests.specs import reference_data, reference_spec

SECRETS = RenderSecrets(
    superuser=SecretStr("s-pw"),
    replication=SecretStr("r-pw"),
    rewind=SecretStr("w-pw"),
    patroni_restapi=SecretStr("a-pw"),
)


def spec_with(**changes: Any) -> ClusterSpec:
    data = reference_data()
    data.update(changes)
    return parse_spec(data, "test")


def loaded(spec: ClusterSpec, host: str = "db1", secrets: RenderSecrets = SECRETS) -> Any:
    return yaml.safe_load(patroni_config(spec, host, secrets).content)


def test_patroni_config_parses_with_watchdog_at_top_level() -> None:
    conf = loaded(reference_spec())
    assert conf["watchdog"] == {"mode": "automatic", "device": "/dev/watchdog", "safety_margin": 5}
    assert "watchdog" not in conf["postgresql"] and "watchdog" not in conf["bootstrap"]
    assert conf["scope"] == "prod" and conf["name"] == "db1"
    assert conf["tags"] == {
        "nofailover": False,
        "noloadbalance": False,
        "clonefrom": False,
        "nosync": False,
    }


@pytest.mark.parametrize("mode", ["off", "automatic", "required"])
def test_patroni_config_watchdog_mode_stays_a_string(mode: str) -> None:
    # YAML 1.1 reads a bare `off` as False; the template must quote it.
    assert loaded(spec_with(watchdog=mode))["watchdog"]["mode"] == mode


def test_patroni_config_bootstrap_dcs_comes_from_spec() -> None:
    spec = spec_with(
        patroni={
            "ttl": 40,
            "loop_wait": 5,
            "retry_timeout": 15,
            "maximum_lag_on_failover": 2097152,
            "synchronous_mode": True,
            "synchronous_mode_strict": True,
        }
    )
    dcs = loaded(spec)["bootstrap"]["dcs"]
    assert dcs == dynamic_config(spec)
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (40, 5, 15)
    assert dcs["maximum_lag_on_failover"] == 2097152
    assert dcs["synchronous_mode"] is True and dcs["synchronous_mode_strict"] is True
    assert dcs["failsafe_mode"] is True
    assert dcs["postgresql"]["use_pg_rewind"] is True and dcs["postgresql"]["use_slots"] is True


def test_patroni_config_addresses_and_paths_of_the_host() -> None:
    conf = loaded(reference_spec(), "db2")
    assert conf["restapi"]["listen"] == conf["restapi"]["connect_address"] == "10.0.0.12:8008"
    assert conf["restapi"]["authentication"] == {"username": "patroni", "password": "a-pw"}
    assert conf["etcd3"]["hosts"] == ["10.0.0.11:2379", "10.0.0.12:2379", "10.0.0.13:2379"]
    pg = conf["postgresql"]
    assert pg["listen"] == "10.0.0.12,127.0.0.1:5432"
    assert pg["connect_address"] == "10.0.0.12:5432"
    assert pg["data_dir"] == "/var/lib/postgresql/15/main"
    assert pg["bin_dir"] == "/usr/lib/postgresql/15/bin"
    assert pg["authentication"] == {
        "superuser": {"username": "postgres", "password": "s-pw"},
        "replication": {"username": "replicator", "password": "r-pw"},
        "rewind": {"username": "rewind", "password": "w-pw"},
    }
    assert "data-checksums" in conf["bootstrap"]["initdb"]
    assert {"encoding": "UTF8"} in conf["bootstrap"]["initdb"]


def test_patroni_config_pg_hba_only_for_cluster_addresses() -> None:
    spec = reference_spec()
    hba = loaded(spec)["postgresql"]["pg_hba"]
    assert loaded(spec)["bootstrap"]["pg_hba"] == hba
    db = {f"{h.address}/32" for h in spec.hosts_with(Role.postgres)}
    proxies = {f"{h.address}/32" for h in spec.hosts_with(Role.haproxy)}
    assert hba[0] == "local all postgres peer"
    for rule in hba[1:]:
        kind, database, user, address, method = rule.split()
        assert kind == "host" and method == "scram-sha-256"
        assert ipaddress.ip_network(address).prefixlen == 32
        if database == "replication":
            assert user == "replicator" and address in db | {"127.0.0.1/32"}
        else:
            assert address in db | proxies | {"127.0.0.1/32"}
    addresses = {r.split()[3] for r in hba[1:]}
    assert addresses == db | proxies | {"127.0.0.1/32"}
    assert not any("10.0.0.31" in r for r in hba), "the backup host reaches PostgreSQL by SSH"


def test_patroni_config_client_networks_are_added_to_pg_hba() -> None:
    f = patroni_config(reference_spec(), "db1", SECRETS, client_networks=["10.1.0.0/16"])
    assert (
        "host all all 10.1.0.0/16 scram-sha-256"
        in yaml.safe_load(f.content)["postgresql"]["pg_hba"]
    )
    with pytest.raises(ValueError):
        patroni_config(reference_spec(), "db1", SECRETS, client_networks=["10.1.0.1/16"])


def test_patroni_config_parameters_split_between_dcs_and_local() -> None:
    spec = spec_with(
        postgres={
            "parameters": {
                "max_connections": 300,
                "shared_buffers": "2GB",
                "wal_log_hints": True,
                "jit": False,
                "random_page_cost": 1.1,
            }
        }
    )
    conf = loaded(spec)
    dcs = conf["bootstrap"]["dcs"]["postgresql"]["parameters"]
    local = conf["postgresql"]["parameters"]
    assert dcs["max_connections"] == 300 and dcs["wal_level"] == "replica"
    assert dcs["wal_log_hints"] == "on" and dcs["hot_standby"] == "on"
    assert local["shared_buffers"] == "2GB" and local["jit"] == "off"
    assert local["random_page_cost"] == 1.1
    assert not DCS_ONLY & set(local), "Patroni drops these from the local section"
    assert local["password_encryption"] == "scram-sha-256"
    assert local["archive_mode"] == "on"
    assert local["archive_command"] == "pgbackrest --stanza=prod archive-push %p"
    assert conf["postgresql"]["recovery_conf"] == {
        "restore_command": 'pgbackrest --stanza=prod archive-get %f "%p"'
    }


def test_patroni_config_without_backups_has_no_archiving() -> None:
    data = reference_data()
    data["hosts"] = [h for h in data["hosts"] if h["name"] != "backup1"]
    data["backup"] = {"enabled": False, "schedule": {"verify_restore": None}}
    conf = loaded(parse_spec(data, "test"))
    assert "archive_command" not in conf["postgresql"]["parameters"]
    assert "recovery_conf" not in conf["postgresql"]


def test_patroni_config_stanza_from_spec() -> None:
    conf = loaded(spec_with(backup={"stanza": "main-stanza"}))
    assert "--stanza=main-stanza " in conf["postgresql"]["parameters"]["archive_command"]


@pytest.mark.parametrize("name", ["port", "listen_addresses", "restore_command", "bad-name"])
def test_patroni_config_refuses_parameters_patroni_owns(name: str) -> None:
    spec = spec_with(postgres={"parameters": {name: "x"}})
    with pytest.raises(ValueError, match=name):
        patroni_config(spec, "db1", SECRETS)


def test_patroni_config_passwords_with_yaml_syntax_round_trip() -> None:
    tricky = "no: 'x' \"y\" #z \\ \u00e9 %p {a} [b] &c *d !e"
    secrets = SECRETS.model_copy(update={"superuser": SecretStr(tricky)})
    conf = loaded(reference_spec(), secrets=secrets)
    assert conf["postgresql"]["authentication"]["superuser"]["password"] == tricky


def test_patroni_config_same_bytes_whatever_the_parameter_order() -> None:
    a = spec_with(postgres={"parameters": {"work_mem": "8MB", "shared_buffers": "1GB"}})
    b = spec_with(postgres={"parameters": {"shared_buffers": "1GB", "work_mem": "8MB"}})
    assert patroni_config(a, "db1", SECRETS).sha256 == patroni_config(b, "db1", SECRETS).sha256


def test_patroni_config_missing_secret_names_it() -> None:
    with pytest.raises(MissingSecretError, match="rewind"):
        patroni_config(reference_spec(), "db1", SECRETS.model_copy(update={"rewind": None}))


@pytest.mark.parametrize("host", ["proxy1", "backup1", "nosuch"])
def test_patroni_config_refuses_hosts_without_role_postgres(host: str) -> None:
    with pytest.raises(ValueError, match=host):
        patroni_config(reference_spec(), host, SECRETS)


def test_patroni_config_file_is_private_and_repr_hides_content() -> None:
    f = patroni_config(reference_spec(), "db1", SECRETS)
    assert (f.path, f.mode, f.owner, f.group) == (
        "/etc/patroni/config.yml",
        0o600,
        "postgres",
        "postgres",
    )
    assert "s-pw" not in repr(f) and "s-pw" in f.content


def test_patroni_config_drained_member_is_out_of_elections_and_the_read_pool() -> None:
    conf = yaml.safe_load(patroni_config(reference_spec(), "db2", SECRETS, drained=True).content)
    assert conf["tags"]["nofailover"] is True and conf["tags"]["noloadbalance"] is True
    assert conf["tags"]["nosync"] is False
    assert loaded(reference_spec())["tags"]["nofailover"] is False  # the default
