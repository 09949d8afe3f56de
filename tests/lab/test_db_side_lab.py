"""The database side of provisioning on real lab hosts db1-db3: packages, etcd, Patroni.

Drives the activities directly (ActivityEnvironment, no workflow) in the order the provision
workflow uses, then again to prove a re-run changes and restarts nothing. Every outcome is
checked independently of pgha with `docker exec` (etcdctl, patronictl, psql, systemctl).
Stays off proxy1/proxy2/backup1, which other tests use.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from pgha.activities import etcd, packages, patroni
from pgha.activities.cluster_secrets import render_secrets
from pgha.hosts.host import connect
from pgha.hosts.ops import etcd as etcd_ops
from pgha.hosts.ops.etcd import EtcdNotHealthy
from pgha.render.patroni import POSTMASTER_WATCH_UNIT as PATRONI_WAKER
from pgha.spec import ClusterSpec, WatchdogMode
from pgha.steps import HostStep, StepResult
from tests.lab.helpers import docker_exec, eventually

pytestmark = pytest.mark.lab

DB = ["db1", "db2", "db3"]
Activity = Callable[[HostStep], Awaitable[StepResult]]


async def run(fn: Activity, spec: ClusterSpec, host: str, **params: str) -> StepResult:
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    result = await env.run(fn, HostStep(spec=spec, host=host, params=params))
    return result.model_copy(update={"facts": {**result.facts, "_heartbeats": len(beats)}})


async def on_hosts(fn: Activity, spec: ClusterSpec, hosts: list[str], **p: str) -> list[StepResult]:
    return list(await asyncio.gather(*(run(fn, spec, h, **p) for h in hosts)))


async def interrupted_bootstrap(spec: ClusterSpec, token: str) -> None:
    """Start db1's member alone and give up waiting: what a worker crash in the middle of the
    bootstrap leaves (db1 started, its peers not yet)."""
    async with connect(spec.target("db1")) as host:
        with pytest.raises(EtcdNotHealthy):
            await etcd_ops.ensure_member(host, etcd.member_plan(spec, "db1", token), within_s=3)


async def provision(spec: ClusterSpec) -> tuple[list[StepResult], dict[str, float]]:
    """The database phases of the provision workflow, timed per phase. On bare hosts, the
    etcd bootstrap is first interrupted after db1 started (timed apart), so the real one
    must resume it."""
    results: list[StepResult] = []
    timings: dict[str, float] = {}

    async def phase(name: str, work: Awaitable[list[StepResult]]) -> list[StepResult]:
        t = time.monotonic()
        out = await work
        timings[name] = round(time.monotonic() - t, 1)
        results.extend(out)
        return out

    async def one(fn: Activity, host: str) -> list[StepResult]:
        return [await run(fn, spec, host)]

    await phase("packages", on_hosts(packages.ensure_host, spec, DB))
    states = await phase("etcd.read_state", on_hosts(etcd.read_state, spec, DB))
    tokens = {s.facts["token"] for s in states} - {""}
    assert len(tokens) <= 1, tokens
    fresh = not tokens
    token = tokens.pop() if tokens else f"pgha-lab-{uuid.uuid4().hex[:12]}"
    if fresh:
        t = time.monotonic()
        await interrupted_bootstrap(spec, token)
        timings["(simulated crash: db1 alone, 3 s wait)"] = round(time.monotonic() - t, 1)
    await phase("etcd.ensure_member", on_hosts(etcd.ensure_member, spec, DB, token=token))
    await phase("etcd.check_cluster", one(etcd.check_cluster, "db1"))
    await phase("patroni.ensure_config", on_hosts(patroni.ensure_config, spec, DB))
    await phase("patroni.start_member(db1)", one(patroni.start_member, "db1"))
    lead = await phase("patroni.wait_leader", one(patroni.wait_leader, "db1"))
    await phase("patroni.start_member(db2,db3)", on_hosts(patroni.start_member, spec, DB[1:]))
    leader = str(lead[0].facts["leader"])
    await phase("patroni.wait_replicas", one(patroni.wait_replicas, leader))
    timings["total"] = round(sum(v for k, v in timings.items() if not k.startswith("(")), 1)
    return results, timings


async def postmaster_start(host: str) -> str:
    sql = "SELECT pg_catalog.pg_postmaster_start_time()"
    code, out = await docker_exec(host, "runuser", "-u", "postgres", "--", "psql", "-XAtc", sql)
    assert code == 0, out
    return out


async def main_pids(host: str) -> tuple[str, str]:
    """MainPID of etcd and patroni: a restart of either would change it."""
    pids = []
    for unit in ("etcd", "patroni"):
        _, out = await docker_exec(host, "systemctl", "show", "-p", "MainPID", "--value", unit)
        pids.append(out)
    return pids[0], pids[1]


@pytest.fixture(scope="module")
async def cold(lab_spec: ClusterSpec) -> tuple[list[StepResult], dict[str, float]]:
    results, timings = await provision(lab_spec)
    changed = sum(r.changed for r in results)
    print(f"\nfirst run ({changed} of {len(results)} steps changed): {json.dumps(timings)}")
    for r in results:
        print(f"  {r.host}: {'changed' if r.changed else 'ok'}: {r.summary}")
    return results, timings


async def test_first_run_forms_etcd_quorum_and_a_streaming_patroni_cluster(
    cold: tuple[list[StepResult], dict[str, float]], lab_spec: ClusterSpec
) -> None:
    results, _ = cold
    secrets = render_secrets(lab_spec, *patroni.SECRETS)
    values = [getattr(secrets, n).get_secret_value() for n in patroni.SECRETS]
    dumped = json.dumps([r.model_dump(mode="json") for r in results])
    assert not [v for v in values if v in dumped], "a secret leaked into a StepResult"
    # Lab containers have no watchdog: automatic, with a visible warning.
    configs = [r for r in results if "watchdog" in r.facts]
    assert {r.facts["watchdog"] for r in configs} == {"automatic"}
    assert all(any("watchdog" in w for w in r.warnings) for r in configs)
    # apt runs for ~20 s: the packages step heartbeats.
    assert all(r.facts["_heartbeats"] > 0 for r in results if "packages" in r.facts)

    code, out = await docker_exec("db1", "etcdctl", "member", "list", "-w", "json")
    assert code == 0, out
    members = json.loads(out)["members"]
    assert sorted((m["name"], m["peerURLs"][0]) for m in members) == [
        ("db1", "http://10.77.0.11:2380"),
        ("db2", "http://10.77.0.12:2380"),
        ("db3", "http://10.77.0.13:2380"),
    ]
    for host in DB:
        code, out = await docker_exec(host, "test", "-d", "/var/lib/etcd/default")
        assert code == 1, f"{host}: the package's throw-away etcd data is still there"

    # What an operator sees: patronictl's lag comes from positions Patroni refreshes once
    # per HA loop (loop_wait 10 s), so it may show the clone's 16 MB for one loop.
    async def patronictl_healthy() -> bool:
        code, out = await docker_exec(
            "db1", "patronictl", "-c", "/etc/patroni/config.yml", "list", "-f", "json"
        )
        assert code == 0, out
        listed = {m["Member"]: m for m in json.loads(out)}
        assert sorted(listed) == DB
        roles = sorted(m["Role"] for m in listed.values())
        assert roles == ["Leader", "Replica", "Replica"], listed
        return all(
            m["State"] in ("running", "streaming") and m["Lag in MB"] == 0
            for m in listed.values()
            if m["Role"] == "Replica"
        )

    await eventually(patronictl_healthy, within=25)
    code, mode = await docker_exec("db2", "stat", "-c", "%a %U", "/etc/patroni/config.yml")
    assert mode == "600 postgres"
    code, out = await docker_exec("db1", "cat", "/etc/postgresql-common/createcluster.conf")
    assert "create_main_cluster = false" in out


async def test_second_run_changes_nothing_and_restarts_nothing(
    cold: tuple[list[StepResult], dict[str, float]], lab_spec: ClusterSpec
) -> None:
    started = {h: await postmaster_start(h) for h in DB}
    pids = {h: await main_pids(h) for h in DB}
    results, timings = await provision(lab_spec)
    print(f"\nsecond run (converged): {json.dumps(timings)}")
    changed = [f"{r.host}: {r.summary}" for r in results if r.changed]
    assert changed == []
    assert {h: await postmaster_start(h) for h in DB} == started
    assert {h: await main_pids(h) for h in DB} == pids


async def patronictl(*args: str) -> str:
    code, out = await docker_exec("db1", "patronictl", "-c", "/etc/patroni/config.yml", *args)
    assert code == 0, out
    return out


async def test_postmaster_watch_wakes_patroni_when_a_postmaster_dies(
    cold: tuple[list[StepResult], dict[str, float]], lab_spec: ClusterSpec
) -> None:
    for host in DB:
        code, out = await docker_exec(host, "systemctl", "is-active", PATRONI_WAKER)
        assert (code, out) == (0, "active"), f"{host}: {PATRONI_WAKER} is {out}"
    members = json.loads(await patronictl("list", "-f", "json"))
    replica = next(m["Member"] for m in members if m["Role"] == "Replica")
    dcs_config = await patronictl("show-config")
    pid_file = f"{lab_spec.postgres.data_path}/postmaster.pid"
    _, pid = await docker_exec(replica, "head", "-n1", pid_file)
    code, out = await docker_exec(replica, "kill", "-KILL", pid)
    assert code == 0, out

    async def woken() -> bool:
        _, log = await docker_exec(replica, "journalctl", "-u", PATRONI_WAKER, "-o", "cat")
        return f"postmaster {pid} exited; woke Patroni" in log and "HTTP 200" in log

    await eventually(woken, within=15)

    async def back_and_streaming() -> bool:
        _, now = await docker_exec(replica, "head", "-n1", pid_file)
        listed = {m["Member"]: m for m in json.loads(await patronictl("list", "-f", "json"))}
        return now != pid and listed[replica]["State"] in ("running", "streaming")

    await eventually(back_and_streaming, within=60)
    # The wake-up is a PATCH that changes nothing: the cluster-wide config is as it was.
    assert await patronictl("show-config") == dcs_config


async def test_member_of_another_etcd_cluster_is_never_rebootstrapped(
    cold: tuple[list[StepResult], dict[str, float]], lab_spec: ClusterSpec
) -> None:
    pid_before = await main_pids("db1")
    with pytest.raises(ApplicationError) as caught:
        await run(etcd.ensure_member, lab_spec, "db1", token="pgha-lab-someoneelse")
    err = caught.value
    assert err.type == "EtcdMemberConflict" and err.non_retryable
    assert "host db1 (10.77.0.11)" in err.message and "never re-bootstraps" in err.message
    assert await main_pids("db1") == pid_before


def with_data_dir(spec: ClusterSpec, path: str) -> ClusterSpec:
    return spec.model_copy(update={"postgres": spec.postgres.model_copy(update={"data_dir": path})})


async def test_data_dir_of_another_system_is_refused_and_left_alone(
    cold: tuple[list[StepResult], dict[str, float]], lab_spec: ClusterSpec
) -> None:
    foreign = "/var/lib/postgresql/15/pgha-foreign"
    initdb = ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/initdb", "-D"]
    await docker_exec("db3", "rm", "-rf", foreign)
    code, _ = await docker_exec("db3", *initdb, foreign)
    assert code == 0
    try:
        _, before = await docker_exec("db3", "sh", "-c", f"ls -l --full-time {foreign} | md5sum")
        with pytest.raises(ApplicationError) as caught:
            await run(patroni.ensure_config, with_data_dir(lab_spec, foreign), "db3")
        err = caught.value
        assert err.type == "DataDirInUse" and err.non_retryable
        assert err.message.startswith(f"host db3 (10.77.0.13): {foreign} belongs to system id ")
        assert "Move the directory aside or run `pgha run reinit --cluster lab --host db3`" in (
            err.message
        )
        _, after = await docker_exec("db3", "sh", "-c", f"ls -l --full-time {foreign} | md5sum")
        assert after == before
        # Made to look like this cluster's (Patroni's header, cluster_name): the system id
        # recorded in etcd still tells it apart.
        conf = "# Do not edit this file manually!\\ncluster_name = 'lab'\\n"
        await docker_exec("db3", "sh", "-c", f'printf "{conf}" > {foreign}/postgresql.conf')
        with pytest.raises(ApplicationError) as caught:
            await run(patroni.ensure_config, with_data_dir(lab_spec, foreign), "db3")
        assert caught.value.type == "DataDirInUse"
        assert "cluster 'lab' expects " in caught.value.message
    finally:
        await docker_exec("db3", "rm", "-rf", foreign)


async def test_required_watchdog_on_a_host_without_one_fails_permanently(
    cold: tuple[list[StepResult], dict[str, float]], lab_spec: ClusterSpec
) -> None:
    spec = lab_spec.model_copy(update={"watchdog": WatchdogMode.required})
    with pytest.raises(ApplicationError) as caught:
        await run(patroni.ensure_config, spec, "db2")
    err = caught.value
    assert err.type == "WatchdogUnavailable" and err.non_retryable
    assert "host db2 (10.77.0.12)" in err.message and "watchdog: automatic" in err.message


async def test_drifted_patroni_config_is_restored_by_reload_without_restart(
    cold: tuple[list[StepResult], dict[str, float]], lab_spec: ClusterSpec
) -> None:
    started, pids = await postmaster_start("db2"), await main_pids("db2")
    await docker_exec("db2", "sh", "-c", "echo '# drift' >> /etc/patroni/config.yml")
    fixed = await run(patroni.ensure_config, lab_spec, "db2")
    assert fixed.changed and "reloaded Patroni (PostgreSQL not restarted)" in fixed.summary
    again = await run(patroni.ensure_config, lab_spec, "db2")
    assert not again.changed
    assert await postmaster_start("db2") == started and await main_pids("db2") == pids
    _, tail = await docker_exec("db2", "tail", "-n", "1", "/etc/patroni/config.yml")
    assert tail != "# drift"


async def test_drifted_etcd_env_restarts_only_that_member_and_keeps_quorum(
    cold: tuple[list[StepResult], dict[str, float]], lab_spec: ClusterSpec
) -> None:
    before = {h: await main_pids(h) for h in DB}
    started = {h: await postmaster_start(h) for h in DB}
    token = str((await run(etcd.read_state, lab_spec, "db2")).facts["token"])
    await docker_exec("db2", "sh", "-c", "echo '# drift' >> /etc/default/etcd")
    fixed = await run(etcd.ensure_member, lab_spec, "db2", token=token)
    assert fixed.changed and "restarted etcd on db2 (only this member)" in fixed.summary
    after = {h: await main_pids(h) for h in DB}
    assert after["db2"][0] != before["db2"][0]  # etcd restarted on db2...
    assert {h: after[h] for h in ("db1", "db3")} == {h: before[h] for h in ("db1", "db3")}
    assert [after[h][1] for h in DB] == [before[h][1] for h in DB]  # ...and no Patroni
    assert (await run(etcd.check_cluster, lab_spec, "db3")).facts["members"] == DB
    assert {h: await postmaster_start(h) for h in DB} == started
