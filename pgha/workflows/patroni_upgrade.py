"""PatroniUpgrade: a new patroni package on every database host without a failover and
without stopping PostgreSQL: the cluster goes into Patroni's maintenance mode (pause), each
member's Patroni is upgraded and restarted (paused, Patroni leaves PostgreSQL running when
it stops), then maintenance mode ends, whatever happened in between."""

from __future__ import annotations

import json

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.probe_verdict import judge
    from pgha.checks.rolling_cost import rolling_cost
    from pgha.checks.rolling_order import NoRollingOrder, rolling_order
    from pgha.rolling_models import PatroniUpgradeInput, PatroniUpgradeReport
    from pgha.spec import ClusterSpec, Role
    from pgha.workflows.policy import HOST_CHECK
    from pgha.workflows.tracker import failure_text

from pgha.workflows.rolling_steps import MEMBER_WORK, SETTLE_S, RollingSteps


@workflow.defn(name="PatroniUpgrade")
class PatroniUpgrade(RollingSteps):
    """Runbook: the cluster must be whole; resolve the version; start the probe; pause
    (no failover, Patroni leaves PostgreSQL alone); for each member not on the version,
    replicas first: install, restart Patroni, wait until it reports PostgreSQL running;
    resume, always; check the cluster is whole and every member's version; report."""

    def __init__(self) -> None:
        self._init_rolling("patroni-upgrade")

    @workflow.run
    async def run(self, inp: PatroniUpgradeInput) -> PatroniUpgradeReport:
        spec = inp.spec
        release = spec.patroni.pypi_version
        self._open(spec, "gate", inp.max_lag_bytes)
        try:
            view = await self._whole(spec, "gate")
            plan = rolling_order(view, [h.name for h in spec.hosts_with(Role.postgres)])
            if release:
                target = _release_target(spec, inp.version)
            else:
                resolved = await self._resolve(spec, plan.primary, {"patroni": inp.version},
                                               inp.allow_downgrade)  # fmt: skip
                target = resolved.target["patroni"]
            before = await self._versions(spec, "before")
            # A member whose running Patroni is not the installed package (the spec went
            # back from a PyPI release to the package) needs its restart too. With a
            # release, "before" is already what runs.
            running: dict[str, str] = {}
            if not release and workflow.patched("patroni-running-version"):
                running = await self._running(spec, "running")
        except (ActivityError, NoRollingOrder, ValueError) as err:
            why = failure_text(err) if isinstance(err, ActivityError) else str(err)
            self.tracker.done(f"REFUSED: {why}")
            raise ApplicationError(f"patroni upgrade refused, nothing was changed: {why}",
                                   type="UpgradeRefused", non_retryable=True) from None  # fmt: skip
        upstream = _upstream(target)
        todo = [
            n for n in plan.order if before.get(n) != target or running.get(n, upstream) != upstream
        ]
        restarted: list[str] = []
        postgres: list[str] = []
        cost = verdict = None
        if todo:
            probe = self._start_probe(spec, inp.rate, "patroni-upgrade")
            await workflow.sleep(SETTLE_S)
            try:
                await self._pause(spec, plan.primary, True)
                for name in todo:
                    self.tracker.phase(f"member {name}")
                    if release:
                        await self._on(spec, name, "patroni.ensure_release", f"{name}-install",
                                       {}, MEMBER_WORK)  # fmt: skip
                    else:
                        packages = {"packages": json.dumps(resolved.target)}
                        await self._on(spec, name, "rolling.install", f"{name}-install",
                                       packages, MEMBER_WORK)  # fmt: skip
                    r = await self._on(spec, name, "rolling.restart_patroni", f"{name}-restart",
                                       {}, MEMBER_WORK)  # fmt: skip
                    restarted.append(name)
                    if r.facts.get("postgres_restarted"):
                        postgres.append(name)
            finally:
                # Maintenance mode must end on every path: a paused cluster does not fail over.
                self.tracker.phase("resume")
                await self._pause(spec, plan.primary, False)
                await self._whole(spec, "end-whole", within=120)
                log = await self._end_probe(probe)
            cost, verdict = rolling_cost(log), judge(log)
        after = await self._versions(spec, "after")
        if running:
            now = await self._running(spec, "running-after")
            after = {n: v if now.get(n) == upstream else f"{v} (runs {now.get(n) or '?'})"
                     for n, v in after.items()}  # fmt: skip
        behind = [n for n, v in after.items() if v != target]
        if behind:
            raise ApplicationError(f"not on patroni {target} at the end: {', '.join(behind)}",
                                   type="UpgradeStopped", non_retryable=True)  # fmt: skip
        self.tracker.done(f"patroni {target} on every member; restarted "
                          f"{', '.join(restarted) or 'none'}")  # fmt: skip
        return PatroniUpgradeReport(
            cluster=spec.cluster, workflow_id=workflow.info().workflow_id,
            started_at=self.started, finished_at=workflow.now(), version=target,
            versions_after=after, restarted=restarted, postgres_restarted=postgres,
            cost=cost, verdict=verdict,
        )  # fmt: skip

    async def _pause(self, spec: ClusterSpec, host: str, paused: bool) -> None:
        word = "yes" if paused else "no"
        await self._on(spec, host, "rolling.set_pause", f"pause-{word}", {"paused": word})

    async def _versions(self, spec: ClusterSpec, key: str) -> dict[str, str]:
        """Each member's installed Patroni: the package's version, or with a PyPI release
        what the running Patroni reports (the release is installed when it runs)."""
        if spec.patroni.pypi_version:
            return await self._running(spec, key)
        return await self._each(spec, key, "rolling.package_versions", {"names": "patroni"})

    async def _running(self, spec: ClusterSpec, key: str) -> dict[str, str]:
        """What each member's running Patroni says it is ("" when it does not answer)."""
        return await self._each(spec, key, "patroni.running_version", {})

    async def _each(self, spec: ClusterSpec, key: str, activity: str,
                    params: dict[str, str]) -> dict[str, str]:  # fmt: skip
        """The ``patroni`` fact of ``activity`` on every member, one after the other."""
        out: dict[str, str] = {}
        for h in spec.hosts_with(Role.postgres):
            r = await self._on(spec, h.name, activity, f"{key}-{h.name}", params, HOST_CHECK)
            out[h.name] = str(r.facts.get("patroni", ""))
        return out


def _upstream(version: str) -> str:
    """3.0.4-1 -> 3.0.4 (what Patroni says of itself); 1:3.0.4-1 too."""
    return version.split(":", 1)[-1].rsplit("-", 1)[0]


def _release_target(spec: ClusterSpec, version: str) -> str:
    """With a PyPI release in the spec, the upgrade goes to that release only.

    :raises ValueError: another version was asked for.
    """
    release = spec.patroni.pypi_version or ""
    if _upstream(version) != release:
        raise ValueError(
            f"the spec runs Patroni {release} from PyPI (patroni.pypi_version); to move to "
            f"{version}, set patroni.pypi_version: {_upstream(version)} in the spec and run "
            "this again"
        )
    return release
