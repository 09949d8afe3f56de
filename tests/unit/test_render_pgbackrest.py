"""pgbackrest.conf for the repository host and the PostgreSQL hosts."""

from __future__ import annotations

import configparser

import pytest

from pgha.render import pgbackrest_db_conf, pgbackrest_repo_conf
from pgha.spec import parse_spec
from tests.specs import reference_data, reference_spec


def ini(text: str) -> configparser.ConfigParser:
    # strict=False: list options (tls-server-auth) repeat a key; the last one wins here.
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    return parser


def test_pgbackrest_repo_conf_lists_every_postgres_host() -> None:
    f = pgbackrest_repo_conf(reference_spec())
    conf = ini(f.content)
    g = conf["global"]
    assert g["repo1-path"] == "/var/lib/pgbackrest"
    assert (g["repo1-retention-full"], g["repo1-retention-diff"]) == ("2", "7")
    assert g["start-fast"] == "y" and g["log-level-console"] == "info"
    assert "backup-standby" not in g
    stanza = conf["prod"]
    for i, addr in enumerate(["10.0.0.11", "10.0.0.12", "10.0.0.13"], start=1):
        assert stanza[f"pg{i}-host"] == addr
        assert stanza[f"pg{i}-host-user"] == "postgres"
        assert stanza[f"pg{i}-path"] == "/var/lib/postgresql/15/main"
    assert "pg4-host" not in stanza
    assert (f.path, f.mode, f.owner) == ("/etc/pgbackrest.conf", 0o640, "postgres")


def test_pgbackrest_repo_conf_settings_from_spec() -> None:
    data = reference_data()
    data["backup"] = {
        "stanza": "main",
        "repo_path": "/srv/backup",
        "from_standby": True,
        "retention": {"full": 4, "diff": None},
    }
    data["postgres"] = {"data_dir": "/srv/pg"}
    conf = ini(pgbackrest_repo_conf(parse_spec(data, "test"), repo_user="pgbackrest").content)
    assert conf["global"]["repo1-path"] == "/srv/backup"
    assert conf["global"]["repo1-retention-full"] == "4"
    assert "repo1-retention-diff" not in conf["global"]
    assert conf["global"]["backup-standby"] == "y"
    assert conf["main"]["pg2-path"] == "/srv/pg"


def test_pgbackrest_db_conf_reaches_the_repository_through_tls_by_default() -> None:
    f = pgbackrest_db_conf(reference_spec(), "db2")
    g = ini(f.content)["global"]
    assert g["repo1-host"] == "10.0.0.31" and g["repo1-host-type"] == "tls"
    assert g["repo1-host-port"] == "8432"
    assert g["repo1-host-ca-file"] == "/etc/pgbackrest/tls/ca.crt"
    assert g["repo1-host-cert-file"] == "/etc/pgbackrest/tls/client.crt"
    assert g["repo1-host-key-file"] == "/etc/pgbackrest/tls/client.key"
    assert "repo1-host-user" not in g
    assert ini(f.content)["prod"]["pg1-path"] == "/var/lib/postgresql/15/main"
    assert (f.owner, f.group, f.mode) == ("postgres", "postgres", 0o640)


def test_pgbackrest_repo_conf_serves_tls_to_the_database_hosts_only() -> None:
    text = pgbackrest_repo_conf(reference_spec()).content
    # A list option is one line per value (configparser cannot read that: checked as text).
    auth = [line for line in text.splitlines() if line.startswith("tls-server-auth=")]
    assert auth == [
        "tls-server-auth=db1=prod",
        "tls-server-auth=db2=prod",
        "tls-server-auth=db3=prod",
    ]
    g = ini("\n".join(line for line in text.splitlines() if line not in auth))["global"]
    assert g["tls-server-address"] == "10.0.0.31" and g["tls-server-port"] == "8432"
    assert g["tls-server-cert-file"] == "/etc/pgbackrest/tls/server.crt"
    assert g["tls-server-ca-file"] == "/etc/pgbackrest/tls/ca.crt"


def test_pgbackrest_over_ssh_has_no_tls_settings() -> None:
    data = reference_data()
    data["backup"] = {"repo_host_type": "ssh"}
    spec = parse_spec(data, "test")
    db = ini(pgbackrest_db_conf(spec, "db2", repo_user="pgbackrest").content)["global"]
    assert db["repo1-host"] == "10.0.0.31" and db["repo1-host-user"] == "pgbackrest"
    assert not [
        k for k in db if "tls" in k or (k.startswith("repo1-host-") and k != "repo1-host-user")
    ]
    repo = ini(pgbackrest_repo_conf(spec).content)["global"]
    assert not [k for k in repo if k.startswith("tls-")]


def test_pgbackrest_refuses_disabled_backups_and_wrong_hosts() -> None:
    data = reference_data()
    data["hosts"] = [h for h in data["hosts"] if h["name"] != "backup1"]
    data["backup"] = {"enabled": False, "schedule": {"verify_restore": None}}
    spec = parse_spec(data, "test")
    with pytest.raises(ValueError, match="backup"):
        pgbackrest_repo_conf(spec)
    with pytest.raises(ValueError, match="backup"):
        pgbackrest_db_conf(spec, "db1")
    with pytest.raises(ValueError, match="proxy1"):
        pgbackrest_db_conf(reference_spec(), "proxy1")
