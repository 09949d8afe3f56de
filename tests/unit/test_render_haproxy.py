"""haproxy.cfg: one server per PostgreSQL host on both listeners, checks by Patroni's API."""

from __future__ import annotations

from pgha.render import haproxy_cfg
from pgha.spec import ClusterSpec, parse_spec
from tests.specs import reference_data, reference_spec


def sections(text: str) -> dict[str, list[str]]:
    """Section header ('listen primary') -> its non-comment lines, stripped."""
    out: dict[str, list[str]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not raw.startswith((" ", "\t")):
            current = line
            out[current] = []
        else:
            out[current].append(line)
    return out


def servers(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("server ")]


def test_haproxy_cfg_one_server_per_postgres_host_on_both_listeners() -> None:
    cfg = sections(haproxy_cfg(reference_spec()).content)
    expected = [
        "server db1 10.0.0.11:5432 check port 8008",
        "server db2 10.0.0.12:5432 check port 8008",
        "server db3 10.0.0.13:5432 check port 8008",
    ]
    assert servers(cfg["listen primary"]) == expected
    assert servers(cfg["listen replicas"]) == expected


def test_haproxy_cfg_routes_by_patroni_health_checks() -> None:
    cfg = sections(haproxy_cfg(reference_spec()).content)
    primary, replicas = cfg["listen primary"], cfg["listen replicas"]
    assert "bind *:5000" in primary and "bind *:5001" in replicas
    assert "option httpchk OPTIONS /primary" in primary
    assert "option httpchk OPTIONS /replica?lag=1048576" in replicas
    assert "http-check expect status 200" in primary and "http-check expect status 200" in replicas
    assert "balance roundrobin" in replicas
    # No healthy replica: reads go to the primary listener's servers.
    assert "use_backend primary if { nbsrv(replicas) eq 0 }" in replicas
    for lines in (primary, replicas):
        assert (
            "default-server inter 1s fastinter 500ms downinter 500ms fall 2 rise 1 "
            "on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down"
        ) in lines


def test_haproxy_cfg_global_defaults_and_stats() -> None:
    cfg = sections(haproxy_cfg(reference_spec()).content)
    assert "maxconn 4000" in cfg["global"]
    defaults = cfg["defaults"]
    assert "mode tcp" in defaults
    for t in ("timeout connect 4s", "timeout client 30m", "timeout server 30m"):
        assert t in defaults
    assert "timeout check 5s" in defaults
    assert {"mode http", "bind *:7000", "stats uri /"} <= set(cfg["listen stats"])


def custom() -> ClusterSpec:
    data = reference_data()
    data["haproxy"] = {"rw_port": 6000, "ro_port": 6001, "stats_port": 6002, "maxconn": 800}
    data["postgres"] = {"port": 5433}
    data["patroni"] = {"restapi_port": 8009, "maximum_lag_on_failover": 4096}
    return parse_spec(data, "test")


def test_haproxy_cfg_ports_and_limits_from_spec() -> None:
    cfg = sections(haproxy_cfg(custom()).content)
    assert "maxconn 800" in cfg["global"]
    assert "bind *:6000" in cfg["listen primary"]
    assert "bind *:6001" in cfg["listen replicas"]
    assert "bind *:6002" in cfg["listen stats"]
    assert "option httpchk OPTIONS /replica?lag=4096" in cfg["listen replicas"]
    assert "server db2 10.0.0.12:5433 check port 8009" in cfg["listen primary"]
