"""etcd facts parsers (recorded output) and ensure_member on a FakeHost: bootstrap once,
resume an interrupted bootstrap, never re-bootstrap a member that carries the marker."""

from __future__ import annotations

import hashlib

import pytest

from pgha.hosts.facts import etcd as facts
from pgha.hosts.facts.systemd import parse_unit_state
from pgha.hosts.ops import etcd as ops
from pgha.hosts.ops.etcd import EtcdMemberConflict, EtcdNotHealthy, MemberPlan
from pgha.hosts.ops.etcd_membership import EtcdMembershipRefused, only_initial_settings_differ
from tests.unit.fakes import FakeHost

HEADER = "# Managed by pgha (cluster lab); changes are overwritten."
TOKEN = "pgha-lab-6d958a4dc75c"
URL = "http://10.77.0.11:2379"

# Recorded on lab host db1 (bookworm, etcd 3.4.23) by running the facts' own commands.
STATE_MEMBER = f"""data\tinitialized
default\tabsent
marker\t{TOKEN}
env_head\t{HEADER}
env_settings\tyes
env_token\t{TOKEN}
"""
HEALTH_ALL = (
    '[{"endpoint":"http://10.77.0.12:2379","health":true,"took":"4.882888ms"},'
    '{"endpoint":"http://10.77.0.11:2379","health":true,"took":"5.08576ms"},'
    '{"endpoint":"http://10.77.0.13:2379","health":true,"took":"7.373024ms"}]\n'
)
HEALTH_ONE_DOWN = (
    '[{"endpoint":"http://10.77.0.12:2379","health":true,"took":"5.351595ms"},'
    '{"endpoint":"http://10.77.0.14:2379","health":false,"took":"4.00074067s",'
    '"error":"context deadline exceeded"}]\n'
)
MEMBER_LIST = (
    '{"header":{"cluster_id":13569356262565596775,"member_id":3771703510427738323,'
    '"raft_term":2},"members":[{"ID":3771703510427738323,"name":"db3","peerURLs":'
    '["http://10.77.0.13:2380"],"clientURLs":["http://10.77.0.13:2379"]},'
    '{"ID":6242167793542736236,"name":"db2","peerURLs":["http://10.77.0.12:2380"],'
    '"clientURLs":["http://10.77.0.12:2379"]},{"ID":9240701027495432160,"name":"db1",'
    '"peerURLs":["http://10.77.0.11:2380"],"clientURLs":["http://10.77.0.11:2379"]}]}\n'
)
STATUS = (
    '[{"Endpoint":"http://10.77.0.11:2379","Status":{"header":{"cluster_id":'
    '13569356262565596775,"member_id":9240701027495432160,"revision":52,"raft_term":2},'
    '"version":"3.4.23","dbSize":40960,"leader":9240701027495432160,"raftIndex":64,'
    '"raftTerm":2,"raftAppliedIndex":64,"dbSizeInUse":40960}}]\n'
)
# Derived from the recorded ones: a bare host right after `apt-get install etcd-server`
# (the package's throw-away member in /var/lib/etcd/default, its all-comment env file).
STATE_FRESH_INSTALL = "data\tabsent\ndefault\tinitialized\nenv_head\t# Default etcd\nenv_token\t\n"

ENV = f"{HEADER}\nETCD_NAME=db1\nETCD_INITIAL_CLUSTER_TOKEN={TOKEN}\n"
PLAN = MemberPlan(
    name="db1",
    client_url=URL,
    data_dir="/var/lib/etcd/pgha-lab",
    env_path="/etc/default/etcd",
    env_content=ENV,
    managed_header=HEADER,
    token=TOKEN,
)


def show(active: str = "active", enabled: str = "enabled") -> str:
    """`systemctl show` output of etcd, in the recorded format."""
    return (
        f"Id=etcd.service\nLoadState=loaded\nActiveState={active}\nSubState=running\n"
        f"UnitFileState={enabled}\nNeedDaemonReload=no\n"
    )


def file_state(content: str | None) -> str:
    """file-state output of a 0644 root file with ``content`` (None: absent)."""
    if content is None:
        return "absent\n"
    digest = hashlib.sha256(content.encode()).hexdigest()
    return f"regular file\t644\troot\troot\t0\t0\t{len(content)}\n{digest}  -\n"


def host(state: str, *, env: str | None = ENV, active: str = "active") -> FakeHost:
    return (
        FakeHost()
        .on("pgha-etcd-state", state)
        .on("systemctl show", show(active))
        .on("pgha-file-state /var/lib/etcd/pgha-lab.pgha-token", file_state(None))
        .on("pgha-file-state /etc/default/etcd", file_state(env))
        .on("cat /etc/default/etcd", env or "")
        .on("endpoint health", f'[{{"endpoint":"{URL}","health":true}}]')
        .on("mktemp")
        .on("systemctl ")
        .on("rm -rf")
    )


def changes(h: FakeHost) -> list[str]:
    reads = ("pgha-etcd-state", "systemctl show", "pgha-file-state", "endpoint health",
             "cat /etc/default/etcd")  # fmt: skip
    return [c for c in h.commands if not any(r in c for r in reads)]


def test_parse_local_state_recorded_member() -> None:
    s = facts.parse_local_state(STATE_MEMBER, parse_unit_state(show(), "etcd"), HEADER)
    assert (s.data_dir, s.default_dir, s.marker, s.env, s.env_token) == (
        "initialized", "absent", TOKEN, "pgha", TOKEN,
    )  # fmt: skip


def test_parse_local_state_fresh_install_is_stock() -> None:
    s = facts.parse_local_state(STATE_FRESH_INSTALL, parse_unit_state(show(), "etcd"), HEADER)
    assert (s.data_dir, s.default_dir, s.marker, s.env) == ("absent", "initialized", "", "stock")


def test_parse_local_state_settings_without_header_are_foreign() -> None:
    text = "data\tabsent\ndefault\tinitialized\nenv_head\tETCD_NAME=x\nenv_settings\tyes\n"
    s = facts.parse_local_state(text, parse_unit_state(show(), "etcd"), HEADER)
    assert s.env == "foreign"


def test_parse_health_recorded_all_healthy_in_asked_order() -> None:
    urls = [f"http://10.77.0.1{i}:2379" for i in (1, 2, 3)]
    found = facts.parse_health(HEALTH_ALL, urls)
    assert [h.endpoint for h in found] == urls and all(h.healthy for h in found)


def test_parse_health_unreported_endpoint_is_unhealthy() -> None:
    urls = ["http://10.77.0.12:2379", "http://10.77.0.14:2379", "http://10.77.0.13:2379"]
    found = facts.parse_health(HEALTH_ONE_DOWN, urls)
    assert [h.healthy for h in found] == [True, False, False]
    assert found[1].error == "context deadline exceeded" and found[2].error == "no answer"
    assert not any(h.healthy for h in facts.parse_health("", urls))


def test_parse_member_list_and_leader_recorded() -> None:
    members = facts.parse_member_list(MEMBER_LIST)
    assert [m.name for m in members] == ["db3", "db2", "db1"]
    assert members[2].peer_urls == ["http://10.77.0.11:2380"]
    assert facts.parse_leader(STATUS) == members[2].id
    assert facts.parse_leader("[]\n") is None
    with pytest.raises(ValueError):
        facts.parse_member_list("Error: context deadline exceeded")


def test_marker_path_sits_beside_the_data_dir() -> None:
    assert ops.marker_path("/var/lib/etcd/pgha-lab/") == "/var/lib/etcd/pgha-lab.pgha-token"


async def test_ensure_member_converged_is_noop() -> None:
    h = host(STATE_MEMBER)
    out = await ops.ensure_member(h, PLAN)
    assert not out.changed
    assert out.summary == (
        f"etcd member db1 of cluster {TOKEN}: /etc/default/etcd is current and etcd is "
        "running and enabled"
    )
    assert changes(h) == []


async def test_ensure_member_fresh_install_bootstraps_once_without_blocking() -> None:
    state = STATE_FRESH_INSTALL
    h = host(state, env="# Default etcd\n")
    out = await ops.ensure_member(h, PLAN)
    assert out.changed
    assert out.summary.startswith(f"bootstrapped etcd member db1 in cluster {TOKEN}")
    assert "removed the package's default data" in out.summary
    ran = changes(h)
    assert ran[:2] == ["systemctl stop etcd", "rm -rf -- /var/lib/etcd/default"]
    assert "mktemp" in ran[2]  # the env file
    assert ran[3] == "systemctl start --no-block etcd"
    assert "mktemp" in ran[4] and len(ran) == 5  # the marker, after health
    assert h.calls[-1].input == TOKEN + "\n"
    # The marker is written only once the member answered health (it has a quorum).
    health = max(i for i, c in enumerate(h.commands) if "endpoint health" in c)
    assert "mktemp" in h.commands[-1] and health < len(h.commands) - 1


async def test_ensure_member_interrupted_bootstrap_same_token_resumes_without_wiping() -> None:
    state = f"data\tinitialized\ndefault\tabsent\nenv_head\t{HEADER}\nenv_token\t{TOKEN}\n"
    h = host(state, active="activating")
    out = await ops.ensure_member(h, PLAN)
    assert out.summary.startswith(f"resumed the bootstrap of etcd member db1 in cluster {TOKEN}")
    ran = changes(h)
    assert not any("rm -rf" in c or "stop" in c or "start" in c for c in ran), ran
    assert len(ran) == 1 and "mktemp" in ran[0]  # only the marker


async def test_ensure_member_unconfirmed_bootstrap_of_other_token_is_wiped() -> None:
    state = f"data\tinitialized\ndefault\tabsent\nenv_head\t{HEADER}\nenv_token\tpgha-lab-old\n"
    h = host(state, env=ENV.replace(TOKEN, "pgha-lab-old"))
    out = await ops.ensure_member(h, PLAN)
    assert "removed /var/lib/etcd/pgha-lab of an unfinished bootstrap" in out.summary
    assert changes(h)[:2] == ["systemctl stop etcd", "rm -rf -- /var/lib/etcd/pgha-lab"]


async def test_ensure_member_marker_of_another_token_is_refused_untouched() -> None:
    h = host(STATE_MEMBER.replace(f"marker\t{TOKEN}", "marker\tpgha-lab-other"))
    with pytest.raises(EtcdMemberConflict, match="never re-bootstraps a member") as caught:
        await ops.ensure_member(h, PLAN)
    assert str(caught.value).startswith("host db1 (10.0.0.11): /var/lib/etcd/pgha-lab is a member")
    assert changes(h) == []


async def test_ensure_member_marker_without_data_reports_lost_member() -> None:
    h = host(STATE_MEMBER.replace("data\tinitialized", "data\tabsent"))
    with pytest.raises(EtcdMemberConflict, match="its data was removed"):
        await ops.ensure_member(h, PLAN)
    assert changes(h) == []


async def test_ensure_member_foreign_env_file_is_refused() -> None:
    state = "data\tabsent\ndefault\tinitialized\nenv_head\tETCD_NAME=x\nenv_settings\tyes\n"
    h = host(state)
    with pytest.raises(EtcdMemberConflict, match="settings pgha did not write"):
        await ops.ensure_member(h, PLAN)
    assert changes(h) == []


async def test_ensure_member_changed_env_restarts_only_this_member() -> None:
    h = host(STATE_MEMBER, env=ENV + "# drift\n")
    out = await ops.ensure_member(h, PLAN)
    assert out.changed and "restarted etcd on db1 (only this member)" in out.summary
    ran = changes(h)
    assert "mktemp" in ran[0] and ran[1:] == ["systemctl restart --no-block etcd"]


async def test_a_new_initial_cluster_alone_rewrites_the_file_without_a_restart() -> None:
    # A membership change (etcd-add/remove) rewrites ETCD_INITIAL_CLUSTER on every member;
    # etcd reads it only to bootstrap, so no running member restarts for it.
    old = ENV + "ETCD_INITIAL_CLUSTER=db1=http://10.77.0.11:2380\n"
    assert old != ENV
    h = host(STATE_MEMBER, env=old)
    out = await ops.ensure_member(h, PLAN)
    assert out.changed and "restart" not in out.summary
    assert not [c for c in changes(h) if "restart" in c]


def test_only_initial_settings_differ() -> None:
    a = "# h\nETCD_NAME=db1\nETCD_INITIAL_CLUSTER=db1=x\n"
    assert only_initial_settings_differ(a, a.replace("db1=x", "db1=x,db4=y"))
    assert not only_initial_settings_differ(a, a.replace("ETCD_NAME=db1", "ETCD_NAME=db9"))
    assert not only_initial_settings_differ(a, a)


async def test_ensure_member_stopped_member_is_started_not_rebootstrapped() -> None:
    h = host(STATE_MEMBER, active="failed")
    out = await ops.ensure_member(h, PLAN)
    assert changes(h) == ["systemctl start --no-block etcd"]
    assert out.summary == "etcd member db1: started/enabled etcd"


async def test_wait_healthy_without_quorum_fails_transiently_with_advice() -> None:
    h = FakeHost().on("endpoint health", HEALTH_ONE_DOWN.replace("12", "11"), exit_code=1)
    with pytest.raises(EtcdNotHealthy, match="Every member must be started"):
        await ops.wait_healthy(h, "http://10.77.0.14:2379", within_s=0)


ENDPOINTS = ["http://10.77.0.11:2379", "http://10.77.0.12:2379", "http://10.77.0.13:2379"]
STATUS_DB3_LEADS = STATUS.replace('"leader":9240701027495432160', '"leader":3771703510427738323')


def test_parse_version_recorded() -> None:
    assert facts.parse_version(STATUS) == "3.4.23"
    assert facts.parse_version("") == "" and facts.parse_version("[]") == ""


async def test_restart_member_of_the_leader_hands_leadership_off_before_the_restart() -> None:
    h = (
        FakeHost()
        .on("member list", MEMBER_LIST)
        .on("endpoint health", HEALTH_ALL)
        .on("endpoint status", STATUS, times=1)  # db1 leads
        .on("endpoint status", STATUS_DB3_LEADS)
        .on("move-leader")
        .on("systemctl restart etcd")
    )
    out = await ops.restart_member(h, ENDPOINTS, "db1")
    move = next(i for i, c in enumerate(h.commands) if "move-leader" in c)
    restart = h.commands.index("systemctl restart etcd")
    assert move < restart and "move-leader 3457c85c0123a0d3" in h.commands[move]
    assert out.summary.startswith("moved etcd leadership from db1 to db3; restarted etcd on db1")
    assert "it runs 3.4.23, every member healthy" in out.summary


async def test_restart_member_of_a_follower_restarts_it_alone() -> None:
    h = (
        FakeHost()
        .on("member list", MEMBER_LIST)
        .on("endpoint health", HEALTH_ALL)
        .on("endpoint status", STATUS)  # db1 leads
        .on("systemctl restart etcd")
    )
    out = await ops.restart_member(h, ENDPOINTS, "db2")
    assert not h.ran("move-leader") and h.ran("systemctl restart etcd")
    assert out.summary.startswith("restarted etcd on db2")


async def test_restart_member_is_refused_while_another_member_is_unhealthy() -> None:
    h = FakeHost().on("member list", MEMBER_LIST).on("endpoint health", HEALTH_ONE_DOWN)
    with pytest.raises(EtcdMembershipRefused) as err:
        await ops.restart_member(h, ENDPOINTS, "db2")
    assert "could cost the quorum" in str(err.value)
    assert not h.ran("systemctl restart")
