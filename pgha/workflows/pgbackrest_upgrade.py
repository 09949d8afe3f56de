"""PgbackrestUpgrade: a new pgbackrest package on every host that has it, and proof that
archiving works afterwards.

Not one host at a time, on purpose: the repository and its clients must run one
pgBackRest version (each refuses a remote of another), so while they differ the
primary's archive-push fails. PostgreSQL keeps such WAL and retries it, so nothing is
lost, but the window is kept to one install: every host installs at once, then the
repository's TLS server restarts into the new binary, then `pgbackrest check` proves a
WAL segment reaches the repository. The cluster's lock keeps pgha's own backups out of
that window."""

from __future__ import annotations

import asyncio
import json

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.probe_verdict import judge
    from pgha.checks.rolling_cost import rolling_cost
    from pgha.progress import StepState
    from pgha.rolling_models import PgbackrestUpgradeInput, PgbackrestUpgradeReport
    from pgha.spec import ClusterSpec, RepoHostType, Role
    from pgha.steps import HostStep
    from pgha.workflows.policy import CLUSTER_WAIT, HOST_CHECK
    from pgha.workflows.tracker import failure_text

from pgha.workflows.rolling_steps import MEMBER_WORK, SETTLE_S, RollingSteps

PACKAGE = "pgbackrest"
#: Debian's unit for `pgbackrest server`, the repository's TLS server.
SERVER_UNIT = "pgbackrest"


class InstallFailed(Exception):
    """An install failed on some hosts; the message names each with its error."""


@workflow.defn(name="PgbackrestUpgrade")
class PgbackrestUpgrade(RollingSteps):
    """Runbook: the cluster whole and archiving working; resolve the version; start the
    probe; install on every host at once; restart the repository's TLS server; archiving
    works again; every host on the version; report."""

    def __init__(self) -> None:
        self._init_rolling("pgbackrest-upgrade")

    @workflow.run
    async def run(self, inp: PgbackrestUpgradeInput) -> PgbackrestUpgradeReport:
        spec = inp.spec
        self._open(spec, "gate", inp.max_lag_bytes)
        hosts = pgbackrest_hosts(spec)
        repo = _repo(spec)
        try:
            await self._whole(spec, "gate")
            if repo:
                await self._check(spec, repo, "gate-archiving")
            resolved = await self._resolve(spec, repo or hosts[0], {PACKAGE: inp.version},
                                           inp.allow_downgrade)  # fmt: skip
            before = await self._versions(spec, hosts, "before")
        except ActivityError as err:
            why = failure_text(err)
            self.tracker.done(f"REFUSED: {why}")
            raise ApplicationError(f"pgbackrest upgrade refused, nothing was changed: {why}",
                                   type="UpgradeRefused", non_retryable=True) from None  # fmt: skip
        target = resolved.target[PACKAGE]
        todo = [h for h in hosts if before[h] != target]
        restarted, check_s, cost, verdict = False, None, None, None
        if todo:
            probe = self._start_probe(spec, inp.rate, "pgbackrest-upgrade")
            await workflow.sleep(SETTLE_S)
            try:
                self.tracker.phase("install everywhere at once")
                packages = {"packages": json.dumps(resolved.target)}
                # Every install runs to its end, so the stop below names each one that failed.
                outcomes = await asyncio.gather(*(
                    self._on(spec, h, "rolling.install", f"{h}-install", packages, MEMBER_WORK)
                    for h in todo), return_exceptions=True)  # fmt: skip
                failed = {h: o for h, o in zip(todo, outcomes, strict=True)
                          if isinstance(o, BaseException)}  # fmt: skip
                if failed:
                    raise InstallFailed("; ".join(
                        f"{h}: {failure_text(e) if isinstance(e, ActivityError) else e}"
                        for h, e in failed.items()))  # fmt: skip
                if repo and spec.backup.repo_host_type is RepoHostType.tls:
                    self.tracker.phase("repository")
                    await self._on(spec, repo, "rolling.restart_units", "server-restart",
                                   {"units": SERVER_UNIT}, MEMBER_WORK)  # fmt: skip
                    restarted = True
                if repo:
                    check_s = await self._check(spec, repo, "end-archiving")
            except (ActivityError, InstallFailed) as err:
                why = failure_text(err) if isinstance(err, ActivityError) else str(err)
                self.tracker.done(f"STOPPED: {why}")
                raise ApplicationError(
                    f"pgbackrest upgrade stopped: {why}. Archiving may be failing until every "
                    "host runs one version (PostgreSQL keeps the WAL and retries); fix the "
                    "host named, then run the upgrade again: hosts on the version are skipped",
                    type="UpgradeStopped", non_retryable=True,
                ) from None  # fmt: skip
            finally:
                log = await self._end_probe(probe)
            cost, verdict = rolling_cost(log), judge(log)
        after = await self._versions(spec, hosts, "after")
        behind = [h for h, v in after.items() if v != target]
        if behind:
            raise ApplicationError(f"not on pgbackrest {target} at the end: {', '.join(behind)}",
                                   type="UpgradeStopped", non_retryable=True)  # fmt: skip
        self.tracker.done(f"pgbackrest {target} on {len(hosts)} hosts; installed on "
                          f"{', '.join(todo) or 'none'}")  # fmt: skip
        return PgbackrestUpgradeReport(
            cluster=spec.cluster, workflow_id=workflow.info().workflow_id,
            started_at=self.started, finished_at=workflow.now(), version=target,
            installed_on=todo, versions_after=after, server_restarted=restarted,
            check_s=check_s, cost=cost, verdict=verdict,
        )  # fmt: skip

    async def _check(self, spec: ClusterSpec, repo: str, key: str) -> float:
        return await self.tracker.run(
            key, "archiving works (pgbackrest check)", repo,
            CLUSTER_WAIT.execute("backup.check_archiving", HostStep(spec=spec, host=repo), float,
                                 summary="pgbackrest check"),
            lambda s: (StepState.ok, f"WAL reached the repository; check took {s:.1f} s"),
        )  # fmt: skip

    async def _versions(self, spec: ClusterSpec, hosts: list[str], key: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for h in hosts:
            r = await self._on(spec, h, "rolling.package_versions", f"{key}-{h}",
                               {"names": PACKAGE}, HOST_CHECK)  # fmt: skip
            out[h] = str(r.facts.get(PACKAGE, ""))
        return out


def pgbackrest_hosts(spec: ClusterSpec) -> list[str]:
    """Every host pgha installs pgBackRest on, the repository first, each once."""
    roles = (Role.backup_repo, Role.verify_target, Role.postgres)
    return list(dict.fromkeys(h.name for r in roles for h in spec.hosts_with(r)))


def _repo(spec: ClusterSpec) -> str:
    """The repository host when backups are on ("" otherwise: nothing to check)."""
    repos = spec.hosts_with(Role.backup_repo)
    return repos[0].name if spec.backup.enabled and repos else ""
