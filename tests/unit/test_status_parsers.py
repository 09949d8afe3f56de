"""Parsers behind `pgha status`, fed output recorded from the lab (Patroni 3.0.2, etcd 3.4)."""

from __future__ import annotations

from pathlib import Path

from pgha.checks.status import parse_etcd, parse_haproxy_csv, parse_patroni_cluster

DATA = Path(__file__).parent / "data"

HAPROXY_CSV = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,"
    "wretr,wredis,status,weight\n"
    """stats,FRONTEND,,,1,1,4000,2,0,0,0,0,0,,,,,OPEN,
primary,FRONTEND,,,0,0,4000,0,0,0,0,0,0,,,,,OPEN,
primary,db1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1
primary,db2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1
primary,BACKEND,0,0,0,0,400,0,0,0,0,0,,0,0,0,0,UP,1
"""
)


def test_parse_patroni_cluster_three_members_lag_zero() -> None:
    st = parse_patroni_cluster((DATA / "patroni_cluster_3members.json").read_text(), "db1")
    assert [(m.name, m.role, m.state, m.timeline) for m in st.members] == [
        ("db1", "leader", "running", 1),
        ("db2", "replica", "running", 1),
        ("db3", "replica", "running", 1),
    ]
    assert [m.lag_bytes for m in st.members] == [None, 0, 0]


def test_parse_etcd_finds_leader_and_health() -> None:
    st = parse_etcd(
        (DATA / "etcdctl_endpoint_status.json").read_text(),
        (DATA / "etcdctl_endpoint_health.json").read_text(),
    )
    assert [m.healthy for m in st.members] == [True, True, True]
    assert st.leader == "http://10.77.0.11:2379"
    assert st.members[0].version == "3.4.23"


def test_parse_etcd_member_down_is_unhealthy_not_dropped() -> None:
    health = '[{"endpoint":"http://10.77.0.13:2379","health":false,"error":"timeout"}]'
    st = parse_etcd("", health)
    assert [(m.endpoint, m.healthy) for m in st.members] == [("http://10.77.0.13:2379", False)]


def test_parse_haproxy_csv_keeps_server_rows() -> None:
    assert [(b.listener, b.server, b.status) for b in parse_haproxy_csv(HAPROXY_CSV)] == [
        ("primary", "db1", "UP"),
        ("primary", "db2", "DOWN"),
    ]
