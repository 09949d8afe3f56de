"""pg_hba rules, connection strings and the RenderedFile / RenderSecrets models."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from pgha.render import RenderedFile, RenderSecrets, connection_strings, hba_rules
from pgha.spec import parse_spec
from tests.specs import reference_data, reference_spec


def test_connection_strings_go_through_the_vip() -> None:
    cs = connection_strings(reference_spec(), database="app", user="app")
    assert cs.read_write == "postgresql://app@10.0.0.100:5000/app"
    assert cs.read_only == "postgresql://app@10.0.0.100:5001/app"
    assert cs.pooled is None


def test_connection_strings_bare_minimum_lists_every_postgres_host() -> None:
    data = reference_data()
    data["hosts"] = [
        {"name": "db1", "address": "10.0.0.11", "roles": ["postgres", "etcd"]},
        {"name": "db2", "address": "10.0.0.12", "roles": ["postgres", "etcd"]},
        {"name": "w1", "address": "10.0.0.15", "roles": ["etcd"]},
    ]
    del data["vip"]
    data["backup"] = {"enabled": False, "schedule": {"verify_restore": None}}
    cs = connection_strings(parse_spec(data, "test"), database="shop")
    hosts = "10.0.0.11:5432,10.0.0.12:5432"
    assert cs.read_write == f"postgresql://{hosts}/shop?target_session_attrs=read-write"
    assert cs.read_only == f"postgresql://{hosts}/shop?target_session_attrs=prefer-standby"
    assert cs.pooled is None


def test_connection_strings_quote_names_and_offer_pgbouncer() -> None:
    data = reference_data()
    data["pgbouncer"] = {"enabled": True}
    cs = connection_strings(parse_spec(data, "test"), database="a/b", user="u@x")
    assert cs.read_write == "postgresql://u%40x@10.0.0.100:5000/a%2Fb"
    assert cs.pooled == "postgresql://u%40x@10.0.0.100:6432/a%2Fb"


def test_hba_rules_are_ordered_and_limited() -> None:
    rules = hba_rules(reference_spec())
    assert rules[0] == "local all postgres peer"
    assert rules[1:4] == [
        f"host replication replicator 10.0.0.1{i}/32 scram-sha-256" for i in (1, 2, 3)
    ]
    assert rules[-2:] == [
        "host all all 10.0.0.21/32 scram-sha-256",
        "host all all 10.0.0.22/32 scram-sha-256",
    ]
    assert not any("trust" in r or "md5" in r or "0.0.0.0" in r for r in rules)


def test_rendered_file_checksum_and_mode() -> None:
    f = RenderedFile(path="/etc/x", content="abc\n", mode=0o640)
    assert f.sha256 == "edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb"
    assert f.mode_octal == "0640"
    with pytest.raises(ValidationError):
        RenderedFile(path="relative", content="")


def test_render_secrets_never_show_in_repr() -> None:
    s = RenderSecrets(superuser=SecretStr("very-secret"))
    assert "very-secret" not in repr(s) and "very-secret" not in str(s)
    assert s.need("superuser") == "very-secret"
