"""The proxy and backup activities on the real lab hosts, run one by one through Temporal's
ActivityEnvironment: HAProxy, keepalived and the VIP on proxy1/proxy2, pgBackRest trust and
configs between backup1 and db1-3, and (when a Patroni cluster runs on db1-3) the stanza,
the archive check and the first full backup. Every effect is checked past pgha, with
`docker exec` into the containers.

Works on bare lab hosts (installs the packages it needs) and on a provisioned lab (then the
first runs already report unchanged).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from pgha.activities import haproxy, keepalived, pgbackrest, pgbouncer
from pgha.activities.cluster_secrets import render_secrets
from pgha.errors import CommandFailed
from pgha.hosts.host import connect
from pgha.hosts.ops.haproxy import ConfigRejected, ensure_haproxy
from pgha.hosts.ops.packages import apt_lock_busy, ensure_packages
from pgha.render.files import RenderedFile
from pgha.render.pgbackrest import CLIENT_CERT as TLS_CLIENT_CERT
from pgha.render.pgbackrest import CLIENT_KEY as TLS_CLIENT_KEY
from pgha.render.pgbackrest import REPO_USER
from pgha.spec import ClusterSpec
from pgha.steps import HostStep, StepResult
from tests.lab.helpers import eventually

pytestmark = pytest.mark.lab

PROXIES = ["proxy1", "proxy2"]
DBS = ["db1", "db2", "db3"]
REPO = "backup1"
VIP = "10.77.0.100"


async def sh(host: str, *argv: str) -> tuple[int, str]:
    """Run a command in a lab container, past pgha and SSH: exit code and stdout+stderr."""
    proc = await asyncio.create_subprocess_exec(
        "docker",
        "exec",
        f"pgha-lab-{host}",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode().strip()


async def eventually_fast(check: Callable[[], Awaitable[bool]], within: float) -> float:
    return await eventually(check, within, every=0.2)


async def su(host: str, user: str, line: str) -> tuple[int, str]:
    """``line`` run by ``user``'s shell in the container, as pgBackRest's SSH would be."""
    return await sh(host, "su", "-s", "/bin/sh", user, "-c", line)


async def repo_info(spec: ClusterSpec) -> dict[str, Any]:
    """`pgbackrest info` on backup1, read past pgha."""
    _, out = await su(REPO, REPO_USER, f"pgbackrest --stanza={spec.stanza} --output=json info")
    info: dict[str, Any] = json.loads(out)[0]
    return info


async def main_pid(host: str, unit: str) -> str:
    return (await sh(host, "systemctl", "show", "-p", "MainPID", "--value", unit))[1]


async def vip_holders() -> list[str]:
    found = []
    for p in PROXIES:
        _, out = await sh(p, "ip", "-o", "-4", "addr", "show")
        if f" {VIP}/" in out:
            found.append(p)
    return found


async def run(act: Any, spec: ClusterSpec, host: str, **params: str) -> StepResult:
    result: StepResult = await ActivityEnvironment().run(
        act, HostStep(spec=spec, host=host, params=params)
    )
    return result


async def run_all(act: Any, spec: ClusterSpec, hosts: list[str], **p: str) -> list[StepResult]:
    return list(await asyncio.gather(*(run(act, spec, h, **p) for h in hosts)))


@pytest_asyncio.fixture(scope="module")
async def spec(lab_spec: ClusterSpec) -> AsyncIterator[ClusterSpec]:
    """The lab spec, with the packages these tests need installed (what the packages step
    installs on these roles; a no-op on a provisioned lab)."""
    wanted = {
        **{p: ["haproxy", "keepalived", "pgbouncer"] for p in PROXIES},
        **{d: ["pgbackrest"] for d in [*DBS, REPO]},
    }

    async def install(name: str, packages: list[str]) -> None:
        async with connect(lab_spec.target(name)) as host:
            for attempt in range(6):
                try:
                    await ensure_packages(host, dict.fromkeys(packages))
                    return
                except CommandFailed as err:
                    # Another test or engineer may be running apt there right now.
                    if attempt == 5 or not apt_lock_busy(err):
                        raise
                await asyncio.sleep(10)

    await asyncio.gather(*(install(n, p) for n, p in wanted.items()))
    yield lab_spec


async def patroni_archiving() -> str | None:
    """Why the stanza tests cannot run, or None when a Patroni cluster archives through
    pgBackRest on db1-3."""
    code, out = await sh("db1", "patronictl", "-c", "/etc/patroni/config.yml", "list", "-f", "json")
    if code != 0:
        return f"no Patroni cluster on db1-3 ({out[-200:]})"
    if not any(m.get("Role") == "Leader" and m.get("State") == "running" for m in json.loads(out)):
        return f"the Patroni cluster has no running leader: {out}"
    q = "SELECT pg_catalog.current_setting('archive_command')"
    _, cmd = await su("db1", "postgres", f'psql -Atc "{q}"')
    if "pgbackrest" not in cmd:
        return f"archive_command on db1 is not pgBackRest's: {cmd!r}"
    return None


# --- proxies ----------------------------------------------------------------------------------


async def test_proxies_converge_configs_valid_and_exactly_one_holds_vip(spec: ClusterSpec) -> None:
    started = time.monotonic()
    await run_all(haproxy.ensure_config, spec, PROXIES)
    await run_all(keepalived.ensure_config, spec, PROXIES)
    converge_s = time.monotonic() - started
    for p in PROXIES:
        _, said = await sh(p, "haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg")
        assert said == "Configuration file is valid"
        code, said = await sh(p, "keepalived", "-t", "-f", "/etc/keepalived/keepalived.conf")
        assert code == 0, said
        for unit in ("haproxy", "keepalived"):
            assert await sh(p, "systemctl", "is-active", unit) == (0, "active")
            assert await sh(p, "systemctl", "is-enabled", unit) == (0, "enabled")
        _, mode = await sh(p, "stat", "-c", "%a %U", "/etc/keepalived/keepalived.conf")
        assert mode == "640 root"  # it holds the VRRP password
    checks = await run_all(keepalived.check_vip, spec, PROXIES)
    holder = checks[0].facts["holder"]
    assert [c.facts["holder"] for c in checks] == [holder, holder]
    assert [c.facts["holds_vip"] for c in checks] == [p == holder for p in PROXIES]
    assert await vip_holders() == [holder]
    print(f"proxies converged in {converge_s:.1f} s; {holder} holds the VIP")


async def test_rejected_haproxy_config_never_replaces_running_one(spec: ClusterSpec) -> None:
    _, before = await sh("proxy2", "sha256sum", "/etc/haproxy/haproxy.cfg")
    pid = await main_pid("proxy2", "haproxy")
    bad = RenderedFile(path="/etc/haproxy/haproxy.cfg", content="global\n    no_such_kw 1\n")
    async with connect(spec.target("proxy2")) as host:
        with pytest.raises(ConfigRejected, match="unknown keyword 'no_such_kw'"):
            await ensure_haproxy(host, bad, [5000])
    assert (await sh("proxy2", "sha256sum", "/etc/haproxy/haproxy.cfg"))[1] == before
    assert await main_pid("proxy2", "haproxy") == pid
    assert (await sh("proxy2", "test", "-e", "/etc/haproxy/.haproxy.cfg.pgha-candidate"))[0] == 1


async def test_haproxy_stopped_on_holder_moves_vip_within_seconds(spec: ClusterSpec) -> None:
    await run_all(keepalived.check_vip, spec, PROXIES)
    (holder,) = await vip_holders()
    other = next(p for p in PROXIES if p != holder)
    await sh(holder, "systemctl", "stop", "haproxy")
    try:

        async def moved() -> bool:
            return await vip_holders() == [other]

        took = await eventually_fast(moved, within=10)
        print(f"VIP moved from {holder} to {other} in {took:.1f} s after haproxy stopped")
    finally:
        await sh(holder, "systemctl", "start", "haproxy")
    # nopreempt: the recovered proxy does not take the VIP back (one move per failure).
    await asyncio.sleep(4)
    assert await vip_holders() == [other]
    check = await run(keepalived.check_vip, spec, holder)
    assert check.facts == {"holds_vip": False, "holder": other, "vip": VIP}


async def test_changed_haproxy_cfg_applied_by_hitless_reload_session_survives(
    spec: ClusterSpec,
) -> None:
    (holder,) = await vip_holders()
    session = await vip_session(spec)
    master = await main_pid(holder, "haproxy")
    _, before = await sh(holder, "pgrep", "-d", ",", "-x", "haproxy")
    # Drift: someone edited the file by hand.
    await sh(holder, "sh", "-c", "echo '# edited by hand' >> /etc/haproxy/haproxy.cfg")
    try:
        fixed = await run(haproxy.ensure_config, spec, holder)
        assert fixed.changed and "reloaded haproxy" in fixed.summary, fixed.summary
        assert "restart" not in fixed.summary
        # Same master (not restarted), new worker (reloaded).
        assert await main_pid(holder, "haproxy") == master
        assert (await sh(holder, "pgrep", "-d", ",", "-x", "haproxy"))[1] != before
        if session is not None:
            # The session opened through the VIP before the reload still works, on the
            # same backend: the old worker keeps serving it.
            pid = session.execute("SELECT pg_catalog.pg_backend_pid()").fetchone()
            assert pid is not None and pid[0] == session.info.backend_pid
            print("a session through the VIP survived the reload")
        assert not (await run(haproxy.ensure_config, spec, holder)).changed
    finally:
        if session is not None:
            session.close()


async def vip_session(spec: ClusterSpec) -> psycopg.Connection[tuple[object, ...]] | None:
    """A session to the primary through VIP:rw_port, or None when no cluster answers."""
    password = render_secrets(spec, "superuser").superuser
    assert password is not None
    try:
        return await asyncio.to_thread(
            psycopg.connect,
            host=VIP,
            port=spec.haproxy.rw_port,
            user="postgres",
            password=password.get_secret_value(),
            dbname="postgres",
            connect_timeout=5,
            autocommit=True,
        )
    except psycopg.Error:
        return None


# --- pgBackRest -------------------------------------------------------------------------------


async def converge_backup_side(spec: ClusterSpec) -> list[StepResult]:
    """keypair -> trust (each side gets the other's facts) -> TLS certificates -> the
    repository's config (and TLS server) -> the database hosts' configs, as the workflow
    does."""
    keys = await run_all(pgbackrest.ensure_keypair, spec, [REPO, *DBS])
    repo, dbs = keys[0].facts, [k.facts for k in keys[1:]]
    trust = await asyncio.gather(
        run(pgbackrest.ensure_trust, spec, REPO, peers=json.dumps(dbs)),
        *(run(pgbackrest.ensure_trust, spec, d, peers=json.dumps([repo])) for d in DBS),
    )
    tls = await run(pgbackrest.ensure_tls, spec, REPO)
    config = [await run(pgbackrest.ensure_config, spec, REPO)]
    config += await run_all(pgbackrest.ensure_config, spec, DBS)
    return [*keys, *trust, tls, *config]


async def client_serials() -> dict[str, str]:
    return {
        db: (await sh(db, "openssl", "x509", "-noout", "-serial", "-in", TLS_CLIENT_CERT))[1]
        for db in DBS
    }


async def test_pgbackrest_tls_server_serves_the_database_hosts_only(spec: ClusterSpec) -> None:
    await converge_backup_side(spec)
    assert (await sh(REPO, "systemctl", "is-active", "pgbackrest"))[1] == "active"
    _, listening = await sh(REPO, "ss", "-Hltn", "sport = :8432")
    assert "10.77.0.31:8432" in listening
    # A lookup the repository answers "not there" (exit 1, as restore_command expects).
    lookup = f"pgbackrest --stanza={spec.stanza} archive-get 00000099.history /tmp/none"
    answered = "unable to find 00000099.history in the archive"
    for db in DBS:  # each reaches the repository through TLS, not SSH
        code, out = await su(db, "postgres", lookup)
        assert code == 1 and answered in out and "--repo1-host-type=tls" in out, out
        assert (await sh(db, "stat", "-c", "%a %U", TLS_CLIENT_KEY))[1] == "600 postgres"
        assert (await sh(db, "test", "-e", "/etc/pgbackrest/tls/ca.key"))[0] != 0  # CA key stays
    # A certificate for db1 from another CA is refused by the server.
    forge = (
        "cd /tmp && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout rogue.key -out rogue.crt -days 1 -subj /CN=db1 2>/dev/null && "
        "chown postgres rogue.key rogue.crt"
    )
    assert (await sh("db1", "sh", "-c", forge))[0] == 0
    try:
        code, out = await su("db1", "postgres", f"{lookup} --repo1-host-cert-file=/tmp/rogue.crt "
                                                "--repo1-host-key-file=/tmp/rogue.key")  # fmt: skip
        assert code not in (0, 1) and answered not in out, out
    finally:
        await sh("db1", "rm", "-f", "/tmp/rogue.key", "/tmp/rogue.crt")
    # A lost client certificate is issued again; the others are kept.
    before = await client_serials()
    await sh("db2", "rm", TLS_CLIENT_CERT)
    again = await run(pgbackrest.ensure_tls, spec, REPO)
    assert again.changed and again.facts["issued"] == "db2", again.summary
    after = await client_serials()
    assert after["db1"] == before["db1"] and after["db3"] == before["db3"]
    assert after["db2"] != before["db2"]
    assert answered in (await su("db2", "postgres", lookup))[1]


async def test_pgbackrest_trust_both_ways_without_prompts_only_from_peers(
    spec: ClusterSpec,
) -> None:
    results = await converge_backup_side(spec)
    repo_key = results[0].facts
    assert repo_key["user"] == REPO_USER and repo_key["public_key"].startswith("ssh-ed25519 ")
    # The host key handed to peers is the one the host really has.
    _, real = await sh(REPO, "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
    assert real.startswith(repo_key["host_key"])
    ssh = "ssh -o BatchMode=yes -o ConnectTimeout=5"
    for i, db in enumerate(DBS, start=1):
        addr = f"10.77.0.1{i}"
        code, out = await su(REPO, REPO_USER, f"{ssh} postgres@{addr} hostname")
        assert (code, out) == (0, db)
        code, out = await su(db, "postgres", f"{ssh} {REPO_USER}@10.77.0.31 hostname")
        assert (code, out) == (0, REPO)
    # from="...": the same key from another address of backup1 is refused. A new
    # connection (ControlPath=none): pgha's shared one, already open from 10.77.0.31, would
    # carry the command without sshd seeing the other address.
    await sh(REPO, "ip", "addr", "add", "10.77.0.99/24", "dev", "eth0")
    try:
        fresh = f"{ssh} -o ControlPath=none -b 10.77.0.99"
        code, out = await su(REPO, REPO_USER, f"{fresh} postgres@10.77.0.11 true")
        assert code != 0 and "Permission denied" in out
    finally:
        await sh(REPO, "ip", "addr", "del", "10.77.0.99/24", "dev", "eth0")
    # The repository user reads its config; the repository is its own, 0750.
    assert (
        await sh(REPO, "runuser", "-u", REPO_USER, "--", "head", "-c", "1", "/etc/pgbackrest.conf")
    )[0] == 0
    assert (await sh(REPO, "stat", "-c", "%a %U", spec.backup.repo_path))[1] == f"750 {REPO_USER}"


async def test_stanza_check_and_first_full_backup(spec: ClusterSpec) -> None:
    why = await patroni_archiving()
    if why:
        pytest.skip(why)
    await converge_backup_side(spec)
    if await stale_stanza(spec):
        # db1-3 were re-created (another test) but backup1 kept the old cluster's stanza:
        # the real "re-provisioned under the same name" case. pgha must refuse, not retry,
        # and never delete backups; the test then clears the stale stanza itself.
        with pytest.raises(ApplicationError) as err:
            await run(pgbackrest.ensure_stanza, spec, REPO)
        assert err.value.non_retryable and "belongs to another database" in str(err.value)
        repo = spec.backup.repo_path
        await sh(REPO, "rm", "-rf", f"{repo}/archive/{spec.stanza}", f"{repo}/backup/{spec.stanza}")
    started = time.monotonic()
    stanza = await run(pgbackrest.ensure_stanza, spec, REPO)
    stanza_s = time.monotonic() - started
    assert stanza.facts["stanza"] == spec.stanza
    started = time.monotonic()
    backup = await run(pgbackrest.ensure_first_backup, spec, REPO)
    backup_s = time.monotonic() - started
    info = await repo_info(spec)
    assert info["status"]["message"] == "ok"
    labels = [b["label"] for b in info["backup"]]
    assert backup.facts["label"] in labels
    assert any(b["type"] == "full" for b in info["backup"])
    assert backup.facts["size"] > 0 and backup.facts["duration_s"] >= 0
    print(
        f"stanza+check {stanza_s:.1f} s ({stanza.summary}); backup {backup_s:.1f} s "
        f"({backup.summary})"
    )


async def stale_stanza(spec: ClusterSpec) -> bool:
    """Whether backup1's repository holds the stanza of another database than db1-3's."""
    q = "SELECT system_identifier FROM pg_catalog.pg_control_system()"
    _, system_id = await su("db1", "postgres", f'psql -Atc "{q}"')
    dbs = (await repo_info(spec))["db"]
    return bool(dbs) and str(dbs[-1]["system-id"]) != system_id


# --- re-run -----------------------------------------------------------------------------------


async def service_pids(host: str) -> dict[str, str]:
    """The processes of haproxy (master and workers: a reload replaces the workers) and
    keepalived; a restart or reload changes them."""
    _, hap = await sh(host, "pgrep", "-d", ",", "-x", "haproxy")
    _, kad = await sh(host, "pgrep", "-d", ",", "-x", "keepalived")
    return {"haproxy": hap, "keepalived": kad}


async def test_rerun_is_all_unchanged_and_restarts_nothing(spec: ClusterSpec) -> None:
    before = {p: await service_pids(p) for p in PROXIES}
    holders = await vip_holders()
    started = time.monotonic()
    results = [
        *await run_all(haproxy.ensure_config, spec, PROXIES),
        *await run_all(keepalived.ensure_config, spec, PROXIES),
        *await run_all(keepalived.check_vip, spec, PROXIES),
        *await converge_backup_side(spec),
    ]
    if await patroni_archiving() is None:
        results.append(await run(pgbackrest.ensure_stanza, spec, REPO))
        results.append(await run(pgbackrest.ensure_first_backup, spec, REPO))
    took = time.monotonic() - started
    changed = [f"{r.host}: {r.summary}" for r in results if r.changed]
    assert changed == []
    assert {p: await service_pids(p) for p in PROXIES} == before
    assert await vip_holders() == holders
    print(f"re-run of {len(results)} steps, all unchanged, in {took:.1f} s")


# --- pgbouncer (disabled in the lab spec; enabled on a copy) ----------------------------------


async def test_pgbouncer_enabled_copy_runs_listens_and_reruns_unchanged(spec: ClusterSpec) -> None:
    on = spec.model_copy(update={"pgbouncer": spec.pgbouncer.model_copy(update={"enabled": True})})
    try:
        await run_all(pgbouncer.ensure_config, on, PROXIES)
        pids = {}
        for p in PROXIES:
            assert await sh(p, "systemctl", "is-active", "pgbouncer") == (0, "active")
            _, listening = await sh(p, "ss", "-Hltn", f"sport = :{on.pgbouncer.port}")
            assert "0.0.0.0:6432" in listening
            pid = pids[p] = await main_pid(p, "pgbouncer")
            _, limits = await sh(p, "cat", f"/proc/{pid}/limits")
            assert any(
                line.startswith("Max open files") and " 4096 " in line
                for line in limits.splitlines()
            ), limits
        again = await run_all(pgbouncer.ensure_config, on, PROXIES)
        assert [r.changed for r in again] == [False, False]
        for p in PROXIES:  # neither restarted nor stopped
            assert (await sh(p, "pgrep", "-x", "pgbouncer"))[1] == pids[p]
    finally:
        # The lab spec has pgbouncer off: leave no pooler listening behind.
        for p in PROXIES:
            await sh(p, "systemctl", "disable", "--now", "pgbouncer")
