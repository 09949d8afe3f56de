"""Provision: bare hosts to the reference architecture, idempotent and resumable.

The runbook a senior DBA follows, one phase after the other; inside a phase, hosts work in
parallel. Every step converges (changed/unchanged), so a re-run changes nothing and a
resumed run never repeats what cannot be repeated (initdb, etcd bootstrap: guarded on the
hosts themselves, not here).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.preflight import HostReport
    from pgha.progress import Progress, StepState
    from pgha.provision_models import Endpoint, ProvisionInput, ProvisionResult
    from pgha.render.postgres import connection_strings
    from pgha.spec import ClusterSpec, RepoHostType, Role
    from pgha.steps import HostStep, StepResult
    from pgha.workflows.policy import (
        CLUSTER_WAIT,
        CONVERGE,
        LONG_CONVERGE,
        ActivityPolicy,
    )
    from pgha.workflows.preflight import check_host
    from pgha.workflows.tracker import Tracker


T = TypeVar("T")


@workflow.defn(name="Provision")
class Provision:
    """Runbook: preflight; packages everywhere; etcd quorum; Patroni leader then replicas;
    HAProxy and keepalived with the VIP; pgbouncer; pgBackRest trust, stanza, archive check
    and first full backup; application databases and roles; an end-to-end write/read; the
    guardian, when the spec enables it."""

    def __init__(self) -> None:
        self.tracker = Tracker("provision", "")
        self.results: list[StepResult] = []

    @workflow.query(name="progress")
    def progress(self) -> Progress:
        return self.tracker.progress

    @workflow.run
    async def run(self, inp: ProvisionInput) -> ProvisionResult:
        spec = inp.spec
        self.tracker = Tracker("provision", spec.cluster)
        self.tracker.tag_search_attributes()
        await self._preflight(spec)
        await self._packages(spec)
        await self._etcd(spec)
        leader = await self._patroni(spec)
        if spec.hosts_with(Role.haproxy):
            await self._proxies(spec)
        if spec.backup.enabled:
            await self._backups(spec)
        await self._application(spec, leader)
        verified = await self.step(
            "verify", "end-to-end write and read", spec, leader,
            "cluster.verify_end_to_end", CLUSTER_WAIT,
        )  # fmt: skip
        if spec.guardian.enabled:
            self.tracker.phase("guardian")
            await self.step("guardian", "the cluster's guardian runs", spec, leader,
                            "guardian.ensure_running", CONVERGE)  # fmt: skip
        result = self._result(spec, verified)
        changed = sum(r.changed for r in self.results)
        self.tracker.done(
            f"cluster {spec.cluster} ready: {changed} of {len(self.results)} steps changed "
            "something"
        )
        return result

    # ------------------------------------------------------------------ phases

    async def _preflight(self, spec: ClusterSpec) -> None:
        self.tracker.phase("preflight")
        reports = await self.each(
            "preflight", "preflight", spec, [h.name for h in spec.hosts], self._check_host
        )
        blocking = [f"{r.host}: {f.check}: {f.message}" for r in reports for f in r.blocking]
        if blocking:
            raise ApplicationError(
                f"preflight of cluster {spec.cluster} found {len(blocking)} blocking "
                "problem(s); nothing was changed:\n" + "\n".join(f"- {b}" for b in blocking),
                type="PreflightBlocked",
                non_retryable=True,
            )

    async def _check_host(self, spec: ClusterSpec, host: str, key: str) -> HostReport:
        return await check_host(self.tracker, spec, host, key=key)

    async def _packages(self, spec: ClusterSpec) -> None:
        self.tracker.phase("packages")
        await self.on_hosts(
            "packages", "packages", spec, [h.name for h in spec.hosts],
            "packages.ensure_host", LONG_CONVERGE,
        )  # fmt: skip

    async def _etcd(self, spec: ClusterSpec) -> None:
        self.tracker.phase("etcd")
        members = [h.name for h in spec.hosts_with(Role.etcd)]
        states = await self.on_hosts(
            "etcd-state", "etcd state", spec, members, "etcd.read_state", CONVERGE
        )
        # A running cluster keeps its token; only a first bootstrap makes a new one.
        tokens = sorted({str(s.facts.get("token", "")) for s in states} - {""})
        if len(tokens) > 1:
            raise ApplicationError(
                f"etcd members of {spec.cluster} carry different cluster tokens {tokens}: "
                "they were bootstrapped separately; pgha will not merge them",
                type="EtcdSplit",
                non_retryable=True,
            )
        newcomers = [h for h, s in zip(members, states, strict=True) if not s.facts.get("token")]
        if tokens and newcomers:
            # Bootstrapping them as "new" next to a running cluster would split it.
            raise ApplicationError(
                f"etcd host(s) {', '.join(newcomers)} of the spec are not members of the "
                f"running etcd cluster of {spec.cluster}: add each with `pgha run etcd-add "
                f"--cluster {spec.cluster} --host HOST`, then provision",
                type="EtcdNewMember",
                non_retryable=True,
            )
        token = tokens[0] if tokens else f"pgha-{spec.cluster}-{workflow.uuid4().hex[:12]}"
        await self.on_hosts(
            "etcd", "etcd member", spec, members, "etcd.ensure_member", LONG_CONVERGE,
            params={"token": token},
        )  # fmt: skip
        await self.step(
            "etcd-health", "etcd quorum", spec, members[0], "etcd.check_cluster", CLUSTER_WAIT
        )

    async def _patroni(self, spec: ClusterSpec) -> str:
        """Start one node, wait for it to lead, then the replicas. Returns the leader."""
        self.tracker.phase("patroni")
        nodes = [h.name for h in spec.hosts_with(Role.postgres)]
        await self.on_hosts(
            "patroni-config", "patroni config", spec, nodes, "patroni.ensure_config", CONVERGE
        )
        first, rest = nodes[0], nodes[1:]
        await self.step("patroni-start", "start first member", spec, first,
                        "patroni.start_member", CONVERGE)  # fmt: skip
        lead = await self.step(
            "patroni-leader", "wait for a leader", spec, first, "patroni.wait_leader",
            CLUSTER_WAIT,
        )  # fmt: skip
        leader = str(lead.facts.get("leader") or first)
        await self.on_hosts(
            "patroni-replica", "start replica", spec, rest, "patroni.start_member", CONVERGE
        )
        await self.step("patroni-streaming", "replicas streaming, lag 0", spec, leader,
                        "patroni.wait_replicas", CLUSTER_WAIT)  # fmt: skip
        return leader

    async def _proxies(self, spec: ClusterSpec) -> None:
        self.tracker.phase("proxies")
        proxies = [h.name for h in spec.hosts_with(Role.haproxy)]
        await self.on_hosts("haproxy", "haproxy", spec, proxies, "haproxy.ensure_config",
                            CONVERGE)  # fmt: skip
        await self.on_hosts("keepalived", "keepalived", spec, proxies,
                            "keepalived.ensure_config", CONVERGE)  # fmt: skip
        if spec.pgbouncer.enabled:
            await self.on_hosts("pgbouncer", "pgbouncer", spec, proxies,
                                "pgbouncer.ensure_config", CONVERGE)  # fmt: skip
        vip = await self.on_hosts("vip", "VIP holder", spec, proxies, "keepalived.check_vip",
                                  CLUSTER_WAIT)  # fmt: skip
        holders = [r.host for r in vip if r.facts.get("holds_vip")]
        if len(holders) != 1:
            raise ApplicationError(
                f"the VIP {spec.vip.address if spec.vip else ''} is held by "
                f"{len(holders)} proxies ({', '.join(holders) or 'none'}); exactly one must "
                "hold it: check keepalived on the proxies (`journalctl -u keepalived`)",
                type="VipNotHeld",
            )

    async def _backups(self, spec: ClusterSpec) -> None:
        self.tracker.phase("backups")
        (repo,) = [h.name for h in spec.hosts_with(Role.backup_repo)]
        nodes = [h.name for h in spec.hosts_with(Role.postgres)]
        # A separate verify host restores from the repository over SSH, like a node.
        verify = spec.verify_host()
        clients = nodes + ([verify.name] if verify and verify.name != repo else [])
        keys = await self.on_hosts("backup-keys", "ssh key", spec, [repo, *clients],
                                   "pgbackrest.ensure_keypair", CONVERGE)  # fmt: skip
        by_host = {k.host: k.facts for k in keys}
        # The repository reaches every database host (and accepts the verify host), and
        # every one of them reaches the repository.
        peers = {repo: [by_host[n] | {"host": n} for n in clients]}
        peers |= {n: [by_host[repo] | {"host": repo}] for n in clients}
        await self.each(
            "backup-trust", "ssh trust", spec, [repo, *clients],
            lambda s, h, key: self._run_step(
                key, s, h, "pgbackrest.ensure_trust", CONVERGE,
                {"peers": json.dumps(peers[h], sort_keys=True)},
            ),
        )  # fmt: skip
        # Provisions started before the TLS server existed replay the one config step.
        if not workflow.patched("pgbackrest-tls"):
            await self.on_hosts("backup-config", "pgbackrest config", spec, [repo, *nodes],
                                "pgbackrest.ensure_config", CONVERGE)  # fmt: skip
        else:
            if spec.backup.repo_host_type is RepoHostType.tls:
                await self.step("backup-tls", "TLS certificates", spec, repo,
                                "pgbackrest.ensure_tls", CONVERGE)  # fmt: skip
            # The repository (and its TLS server) first: the database hosts' archive-push
            # goes there as soon as their config names it.
            await self.step("backup-config-repo", "pgbackrest config", spec, repo,
                            "pgbackrest.ensure_config", CONVERGE)  # fmt: skip
            await self.on_hosts("backup-config", "pgbackrest config", spec, nodes,
                                "pgbackrest.ensure_config", CONVERGE)  # fmt: skip
        await self.step("backup-stanza", "stanza and archive check", spec, repo,
                        "pgbackrest.ensure_stanza", LONG_CONVERGE)  # fmt: skip
        await self.step("backup-first", "first full backup", spec, repo,
                        "pgbackrest.ensure_first_backup", LONG_CONVERGE)  # fmt: skip

    async def _application(self, spec: ClusterSpec, leader: str) -> None:
        if not (spec.databases or spec.roles):
            return
        self.tracker.phase("application")
        await self.step("app", "databases and roles", spec, leader, "postgres.ensure_app",
                        CONVERGE)  # fmt: skip

    # ------------------------------------------------------------------ plumbing

    async def step(
        self, key: str, title: str, spec: ClusterSpec, host: str, activity: str,
        policy: ActivityPolicy, params: dict[str, str] | None = None,
    ) -> StepResult:  # fmt: skip
        self.tracker.add(key, title, host)
        return await self._run_step(key, spec, host, activity, policy, params or {})

    async def on_hosts(
        self, prefix: str, title: str, spec: ClusterSpec, hosts: Sequence[str], activity: str,
        policy: ActivityPolicy, params: dict[str, str] | None = None,
    ) -> list[StepResult]:  # fmt: skip
        """The same converge step on several hosts at once."""
        return await self.each(
            prefix, title, spec, hosts,
            lambda s, h, key: self._run_step(key, s, h, activity, policy, params or {}),
        )  # fmt: skip

    async def each(
        self, prefix: str, title: str, spec: ClusterSpec, hosts: Sequence[str],
        run: Callable[[ClusterSpec, str, str], Awaitable[T]],
    ) -> list[T]:  # fmt: skip
        """Run ``run(spec, host, step_key)`` on every host at once, each a progress step."""
        keys = [f"{prefix}:{h}" for h in hosts]
        for key, host in zip(keys, hosts, strict=True):
            self.tracker.add(key, title, host)
        return list(
            await asyncio.gather(*(run(spec, h, k) for h, k in zip(hosts, keys, strict=True)))
        )

    async def _run_step(
        self, key: str, spec: ClusterSpec, host: str, activity: str, policy: ActivityPolicy,
        params: dict[str, str],
    ) -> StepResult:  # fmt: skip
        self.tracker.start(key)
        try:
            result = await policy.execute(
                activity, HostStep(spec=spec, host=host, params=params), StepResult,
                summary=f"{activity} {host}",
            )  # fmt: skip
        except Exception as err:
            self.tracker.finish(key, StepState.failed, _failure_text(err))
            raise
        state = StepState.changed if result.changed else StepState.ok
        if result.warnings:
            state = StepState.warning
        detail = "; ".join([result.summary, *result.warnings])
        self.tracker.finish(key, state, detail)
        self.results.append(result)
        return result

    def _result(self, spec: ClusterSpec, verified: StepResult) -> ProvisionResult:
        conn = connection_strings(spec)
        return ProvisionResult(
            cluster=spec.cluster,
            steps=len(self.results),
            changed=sum(r.changed for r in self.results),
            warnings=sorted({f"{r.host}: {w}" for r in self.results for w in r.warnings}),
            endpoints=endpoints(spec),
            read_write=conn.read_write,
            read_only=conn.read_only,
            pooled=conn.pooled,
            leader=str(verified.facts.get("leader", "")),
            verified=verified.summary,
        )


def endpoints(spec: ClusterSpec) -> list[Endpoint]:
    """Every component with its address and port, for the report."""
    out: list[Endpoint] = []
    for h in spec.hosts:
        a = str(h.address)
        if Role.postgres in h.roles:
            out.append(Endpoint(component="postgresql", host=h.name, address=a,
                                port=spec.postgres.port))  # fmt: skip
            out.append(Endpoint(component="patroni api", host=h.name, address=a,
                                port=spec.patroni.restapi_port))  # fmt: skip
        if Role.etcd in h.roles:
            out.append(Endpoint(component="etcd", host=h.name, address=a,
                                port=spec.etcd.client_port))  # fmt: skip
        if Role.haproxy in h.roles:
            out.append(Endpoint(component="haproxy stats", host=h.name, address=a,
                                port=spec.haproxy.stats_port))  # fmt: skip
        if Role.backup_repo in h.roles:
            out.append(Endpoint(component="pgbackrest repo", host=h.name, address=a, port=22))
    if spec.vip is not None:
        vip = str(spec.vip.address.ip)
        out.append(Endpoint(component="read-write (VIP)", host="vip", address=vip,
                            port=spec.haproxy.rw_port))  # fmt: skip
        out.append(Endpoint(component="read-only (VIP)", host="vip", address=vip,
                            port=spec.haproxy.ro_port))  # fmt: skip
        if spec.pgbouncer.enabled:
            out.append(Endpoint(component="pgbouncer (VIP)", host="vip", address=vip,
                                port=spec.pgbouncer.port))  # fmt: skip
    return out


def _failure_text(err: BaseException) -> str:
    cause = err.__cause__ if isinstance(err.__cause__, ApplicationError) else err
    return str(getattr(cause, "message", cause))
