"""pgbouncer on the proxies, in front of the local HAProxy read-write port."""

from __future__ import annotations

import configparser

import pytest
from pydantic import SecretStr

from pgha.errors import SpecError
from pgha.render import (
    RenderSecrets,
    pgbouncer_auth_sql,
    pgbouncer_ini,
    pgbouncer_systemd_dropin,
    pgbouncer_userlist,
)
from pgha.spec import ClusterSpec, parse_spec
from tests.specs import reference_data


def with_pgbouncer(**settings: object) -> ClusterSpec:
    data = reference_data()
    data["pgbouncer"] = {"enabled": True, **settings}
    return parse_spec(data, "test")


def test_pgbouncer_ini_forwards_to_local_haproxy_with_spec_pools() -> None:
    spec = with_pgbouncer(port=6433, pool_mode="session", default_pool_size=7, max_client_conn=300)
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    parser.read_string(pgbouncer_ini(spec).content)
    assert parser["databases"]["*"] == "host=127.0.0.1 port=5000"
    pgb = parser["pgbouncer"]
    assert (pgb["listen_addr"], pgb["listen_port"]) == ("*", "6433")
    assert pgb["pool_mode"] == "session"
    assert (pgb["default_pool_size"], pgb["max_client_conn"]) == ("7", "300")
    assert pgb["auth_type"] == "scram-sha-256"
    assert pgb["auth_user"] == "pgbouncer_auth"
    assert "pgbouncer.get_auth($1)" in pgb["auth_query"]
    assert "auth_dbname" not in pgb, "pgbouncer 1.18 has no auth_dbname"


def test_pgbouncer_userlist_quotes_the_auth_user_password() -> None:
    secrets = RenderSecrets(pgbouncer_auth=SecretStr('a"b c'))
    f = pgbouncer_userlist(with_pgbouncer(), secrets)
    assert f.content.splitlines()[1] == '"pgbouncer_auth" "a""b c"'
    assert f.mode & 0o007 == 0 and 'a"b' not in repr(f)


def test_pgbouncer_open_file_limit_covers_clients_and_servers() -> None:
    data = reference_data()
    data["pgbouncer"] = {"enabled": True, "max_client_conn": 9000}
    data["postgres"] = {"parameters": {"max_connections": 500}}
    text = pgbouncer_systemd_dropin(parse_spec(data, "test")).content
    assert "LimitNOFILE=9628" in text
    assert "LimitNOFILE=4096" in pgbouncer_systemd_dropin(with_pgbouncer()).content


def test_pgbouncer_auth_sql_never_returns_superusers() -> None:
    sql = pgbouncer_auth_sql()
    assert "SECURITY DEFINER" in sql and "NOT a.rolsuper" in sql
    assert "REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC" in sql
    assert "AUTHORIZATION" not in sql, "auth_user must not own the function's schema"


def test_pgbouncer_refused_without_proxies() -> None:
    data = reference_data()
    data["hosts"] = [h for h in data["hosts"] if h["name"] not in ("proxy1", "proxy2")]
    del data["vip"]
    data["pgbouncer"] = {"enabled": True}
    # The spec refuses it up front; the renderer refuses too, for specs built in code.
    with pytest.raises(SpecError, match=r"pgbouncer\.enabled: pgbouncer runs on the HAProxy"):
        parse_spec(data, "test")
    data["pgbouncer"] = {"enabled": False}
    spec = parse_spec(data, "test")
    spec = spec.model_copy(
        update={"pgbouncer": spec.pgbouncer.model_copy(update={"enabled": True})}
    )
    with pytest.raises(ValueError, match="HAProxy"):
        pgbouncer_ini(spec)
