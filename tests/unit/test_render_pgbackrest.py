"""pgbackrest.conf for the repository host and the PostgreSQL hosts."""

from __future__ import annotations

import configparser

import pytest

from pgha.render import pgbackrest_db_conf, pgbackrest_repo_conf
from pgha.spec import parse_spec
from tests.specs import reference_data, reference_spec


def ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
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


def test_pgbackrest_db_conf_points_at_the_repository_host() -> None:
    f = pgbackrest_db_conf(reference_spec(), "db2", repo_user="pgbackrest")
    conf = ini(f.content)
    assert conf["global"]["repo1-host"] == "10.0.0.31"
    assert conf["global"]["repo1-host-user"] == "pgbackrest"
    assert conf["prod"]["pg1-path"] == "/var/lib/postgresql/15/main"
    assert (f.owner, f.group, f.mode) == ("postgres", "postgres", 0o640)


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
