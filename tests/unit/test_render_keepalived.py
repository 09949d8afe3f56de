"""keepalived.conf: unicast VRRP between the proxies, tracking the local HAProxy."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr, ValidationError

from pgha.render import MissingSecretError, RenderSecrets, keepalived_check_script, keepalived_conf
from pgha.spec import parse_spec
from tests.specs import reference_data, reference_spec

SECRETS = RenderSecrets(keepalived_auth=SecretStr("vrrp-pw"))


def block(text: str, name: str) -> list[str]:
    """The lines inside ``name { ... }`` (one level)."""
    m = re.search(rf"^\s*{re.escape(name)} \{{\n(.*?)^\s*\}}", text, re.S | re.M)
    assert m, name
    return [line.strip() for line in m.group(1).splitlines() if line.strip()]


def three_proxies() -> dict[str, str]:
    data = reference_data()
    data["hosts"].append({"name": "proxy3", "address": "10.0.0.23", "roles": ["haproxy"]})
    spec = parse_spec(data, "test")
    return {p: keepalived_conf(spec, p, SECRETS).content for p in ("proxy1", "proxy2", "proxy3")}


def test_keepalived_peers_are_the_other_proxies_never_self() -> None:
    confs = three_proxies()
    addr = {"proxy1": "10.0.0.21", "proxy2": "10.0.0.22", "proxy3": "10.0.0.23"}
    for name, text in confs.items():
        peers = block(text, "unicast_peer")
        assert addr[name] not in peers
        assert sorted(peers) == sorted(a for n, a in addr.items() if n != name)
        assert f"unicast_src_ip {addr[name]}" in text


def test_keepalived_priority_follows_spec_order_all_backup_nopreempt() -> None:
    confs = three_proxies()
    prio = {n: int(re.findall(r"priority (\d+)", t)[0]) for n, t in confs.items()}
    assert prio["proxy1"] > prio["proxy2"] > prio["proxy3"] >= 1
    for text in confs.values():
        assert "state BACKUP" in text and "nopreempt" in text and "state MASTER" not in text


def test_keepalived_instance_settings_from_spec() -> None:
    data = reference_data()
    data["vip"] = {"address": "10.0.0.200/24", "interface": "ens3", "virtual_router_id": 77}
    text = keepalived_conf(parse_spec(data, "test"), "proxy2", SECRETS).content
    inst = block(text, "vrrp_instance pgha_prod")
    assert "interface ens3" in inst and "virtual_router_id 77" in inst
    assert block(text, "virtual_ipaddress") == ["10.0.0.200/24 dev ens3"]
    assert block(text, "authentication") == ["auth_type PASS", "auth_pass vrrp-pw"]
    assert block(text, "track_script") == ["chk_haproxy"]


def test_keepalived_check_tracks_local_haproxy_with_fault_on_failure() -> None:
    spec = reference_spec()
    text = keepalived_conf(spec, "proxy1", SECRETS).content
    chk = block(text, "vrrp_script chk_haproxy")
    script = keepalived_check_script(spec)
    assert f'script "{script.path}"' in chk
    assert {"interval 1", "fall 2", "rise 2", "weight 0"} <= set(chk)
    assert "patroni" not in " ".join(chk).lower() and "8008" not in script.content
    assert "/dev/tcp/127.0.0.1/7000" in script.content
    assert script.content.startswith("#!/bin/bash\n")
    assert (script.mode, script.owner) == (0o755, "root")


def test_keepalived_conf_is_not_world_readable() -> None:
    f = keepalived_conf(reference_spec(), "proxy1", SECRETS)
    assert f.mode & 0o007 == 0 and "vrrp-pw" not in repr(f)


@pytest.mark.parametrize("value", ["123456789", "", "with space", 'q"uote'])
def test_keepalived_auth_secret_must_fit_vrrp_pass(value: str) -> None:
    with pytest.raises(ValidationError, match="keepalived_auth"):
        RenderSecrets(keepalived_auth=SecretStr(value))


def test_keepalived_conf_needs_its_secret_and_a_proxy_host() -> None:
    with pytest.raises(MissingSecretError, match="keepalived_auth"):
        keepalived_conf(reference_spec(), "proxy1", RenderSecrets())
    with pytest.raises(ValueError, match="db1"):
        keepalived_conf(reference_spec(), "db1", SECRETS)
