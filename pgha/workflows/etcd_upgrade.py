"""EtcdUpgrade: a new etcd package on every etcd member, one member at a time, without
costing the quorum or moving Patroni's leader. Followers first, the etcd leader last;
leadership is handed off before a member's package changes (Debian's etcd-server restarts
etcd as it installs), and after each member's restart every member must answer healthy
and Patroni must still be whole before the next member is touched."""

from __future__ import annotations

import json

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.probe_verdict import judge
    from pgha.checks.rolling_cost import rolling_cost
    from pgha.hosts.facts.apt_versions import upstream
    from pgha.rolling_models import (
        EtcdMemberVersion,
        EtcdUpgradeInput,
        EtcdUpgradeReport,
    )
    from pgha.spec import ClusterSpec, Role
    from pgha.steps import StepResult
    from pgha.workflows.policy import HOST_CHECK
    from pgha.workflows.tracker import failure_text

from pgha.workflows.rolling_steps import MEMBER_WORK, SETTLE_S, RollingSteps, leader_of

#: The packages of an etcd member, both at the one version.
ETCD_PACKAGES = ("etcd-server", "etcd-client")


@workflow.defn(name="EtcdUpgrade")
class EtcdUpgrade(RollingSteps):
    """Runbook: Patroni whole and every etcd member healthy; resolve the version; start the
    probe; for each member not on it (followers first, the leader last): hand off
    leadership, install, restart, every member healthy, Patroni whole; check every member
    runs the version; report."""

    def __init__(self) -> None:
        self._init_rolling("etcd-upgrade")

    @workflow.run
    async def run(self, inp: EtcdUpgradeInput) -> EtcdUpgradeReport:
        spec = inp.spec
        self._open(spec, "gate", inp.max_lag_bytes)
        members = [h.name for h in spec.hosts_with(Role.etcd)]
        try:
            patroni_before = leader_of(await self._whole(spec, "gate"))
            etcd_before = str((await self._etcd_healthy(spec, "gate-etcd")).facts["leader"])
            wanted = dict.fromkeys(ETCD_PACKAGES, inp.version)
            resolved = await self._resolve(spec, members[0], wanted, inp.allow_downgrade)
            before = await self._versions(spec, members, "before")
        except ActivityError as err:
            why = failure_text(err)
            self.tracker.done(f"REFUSED: {why}")
            raise ApplicationError(f"etcd upgrade refused, nothing was changed: {why}",
                                   type="UpgradeRefused", non_retryable=True) from None  # fmt: skip
        target = resolved.target["etcd-server"]
        order = [m for m in members if m != etcd_before] + [etcd_before]
        todo = [m for m in order if inp.restart_all or not _on_target(before[m], target)]
        restarted: list[str] = []
        cost = verdict = None
        if todo:
            probe = self._start_probe(spec, inp.rate, "etcd-upgrade")
            await workflow.sleep(SETTLE_S)
            try:
                for name in todo:
                    await self._member(spec, name, resolved.target)
                    restarted.append(name)
            except ActivityError as err:
                left = [m for m in todo if m not in restarted and m != name]
                self.tracker.done(f"STOPPED at {name}: {failure_text(err)}")
                raise ApplicationError(
                    f"etcd upgrade stopped at {name}: {failure_text(err)}; restarted before "
                    f"it: {', '.join(restarted) or 'none'}; not touched: "
                    f"{', '.join(left) or 'none'}. Fix {name} (`journalctl -u etcd` there), "
                    "then run the upgrade again: members on the version are skipped",
                    type="UpgradeStopped", non_retryable=True,
                ) from None  # fmt: skip
            finally:
                log = await self._end_probe(probe)
            cost, verdict = rolling_cost(log), judge(log)
        etcd_after = str((await self._etcd_healthy(spec, "end-etcd")).facts["leader"])
        patroni_after = await self._final_leader(spec)
        after = await self._versions(spec, members, "after")
        behind = [m for m, v in after.items() if not _on_target(v, target)]
        if behind:
            raise ApplicationError(f"not on etcd {target} at the end: {', '.join(behind)}",
                                   type="UpgradeStopped", non_retryable=True)  # fmt: skip
        self.tracker.done(f"etcd {upstream(target)} on every member; restarted "
                          f"{', '.join(restarted) or 'none'}")  # fmt: skip
        return EtcdUpgradeReport(
            cluster=spec.cluster, workflow_id=workflow.info().workflow_id,
            started_at=self.started, finished_at=workflow.now(), version=target,
            restarted=restarted, leader_before=etcd_before, leader_after=etcd_after,
            versions_before=before, versions_after=after,
            patroni_leader_before=patroni_before, patroni_leader_after=patroni_after,
            cost=cost, verdict=verdict,
        )  # fmt: skip

    async def _member(self, spec: ClusterSpec, name: str, packages: dict[str, str]) -> None:
        """One member: leadership away, the packages, a restart with every member healthy
        after it, and Patroni still whole."""
        self.tracker.phase(f"member {name}")
        await self._on(spec, name, "etcd.hand_off_leadership", f"{name}-hand-off", {})
        await self._on(spec, name, "rolling.install", f"{name}-install",
                       {"packages": json.dumps(packages)}, MEMBER_WORK)  # fmt: skip
        await self._on(spec, name, "etcd.restart_member", f"{name}-restart", {}, MEMBER_WORK)
        await self._whole(spec, f"{name}-patroni", within=self.member_timeout_s)

    async def _etcd_healthy(self, spec: ClusterSpec, key: str) -> StepResult:
        first = spec.hosts_with(Role.etcd)[0].name
        return await self._on(spec, first, "etcd.check_cluster", key, {})

    async def _versions(self, spec: ClusterSpec, members: list[str],
                        key: str) -> dict[str, EtcdMemberVersion]:  # fmt: skip
        out: dict[str, EtcdMemberVersion] = {}
        for name in members:
            r = await self._on(spec, name, "etcd.member_versions", f"{key}-{name}", {},
                               HOST_CHECK)  # fmt: skip
            out[name] = EtcdMemberVersion(installed=str(r.facts.get("installed", "")),
                                          running=str(r.facts.get("running", "")))  # fmt: skip
        return out


def _on_target(v: EtcdMemberVersion, target: str) -> bool:
    """Installed at the target and running it (a package installed but not restarted
    into is not upgraded)."""
    return v.installed == target and v.running == upstream(target)
