"""ProxyUpgrade: HAProxy, keepalived and pgbouncer packages on the proxy hosts, one host
at a time, never the one holding the VIP: the other proxy first, then the VIP moves to it
(keepalived stopped on the holder; nopreempt keeps it there afterwards) and the former
holder is upgraded. The writers see one VIP move."""

from __future__ import annotations

import json

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.probe_verdict import judge
    from pgha.checks.rolling_cost import rolling_cost
    from pgha.progress import StepState
    from pgha.rolling_models import ProxyUpgradeInput, ProxyUpgradeReport
    from pgha.spec import ClusterSpec, Role
    from pgha.status_models import ProxyStatus
    from pgha.steps import HostStep
    from pgha.workflows.policy import CONVERGE, HOST_CHECK, STATUS_READ
    from pgha.workflows.tracker import failure_text

from pgha.workflows.rolling_steps import MEMBER_WORK, SETTLE_S, RollingSteps


@workflow.defn(name="ProxyUpgrade")
class ProxyUpgrade(RollingSteps):
    """Runbook: both proxies run HAProxy and keepalived and one holds the VIP; resolve the
    versions; start the probe; the proxy without the VIP: install, restart its services,
    check them; the VIP holder: stop keepalived (the VIP moves to the upgraded proxy),
    install, restart, start keepalived again; check every proxy's versions; report."""

    def __init__(self) -> None:
        self._init_rolling("proxy-upgrade")

    @workflow.run
    async def run(self, inp: ProxyUpgradeInput) -> ProxyUpgradeReport:
        spec = inp.spec
        self._open(spec, "gate")
        proxies = [h.name for h in spec.hosts_with(Role.haproxy)]
        try:
            states = [await self._proxy(spec, p, f"gate-{p}") for p in proxies]
            down = [s.host for s in states if s.haproxy != "active" or s.keepalived != "active"]
            holders = [s.host for s in states if s.holds_vip]
            if len(proxies) < 2 or down or len(holders) != 1:
                raise ApplicationError(
                    f"proxies: {len(proxies)}, not running: {', '.join(down) or 'none'}, VIP "
                    f"holders: {', '.join(holders) or 'none'}; a proxy upgrade needs two "
                    "running proxies and one VIP holder", type="NotWhole")  # fmt: skip
            resolved = await self._resolve(spec, proxies[0], inp.packages, inp.allow_downgrade)
        except (ActivityError, ApplicationError) as err:
            why = failure_text(err) if isinstance(err, ActivityError) else err.message
            self.tracker.done(f"REFUSED: {why}")
            raise ApplicationError(f"proxy upgrade refused, nothing was changed: {why}",
                                   type="UpgradeRefused", non_retryable=True) from None  # fmt: skip
        holder = holders[0]
        order = [p for p in proxies if p != holder] + [holder]
        probe = self._start_probe(spec, inp.rate, "proxy-upgrade")
        await workflow.sleep(SETTLE_S)
        # A restart takes the new binaries (Debian's postinst may have restarted them too).
        units = "haproxy" + (" pgbouncer" if spec.pgbouncer.enabled else "")
        try:
            for p in order:
                self.tracker.phase(f"proxy {p}")
                if p == holder:
                    await self._unit(spec, p, "stop", "keepalived", f"{p}-vip-away")
                    await self.tracker.run(
                        f"{p}-vip", "the VIP moves to an upgraded proxy", None,
                        CONVERGE.execute("drill.wait_vip", HostStep(spec=spec, host=p,
                                         params={"not": p}), str, summary="VIP moves"),
                        lambda h: (StepState.ok, f"{h} holds the VIP"),
                    )  # fmt: skip
                await self._on(spec, p, "rolling.install", f"{p}-install",
                               {"packages": json.dumps(resolved.target)}, MEMBER_WORK)  # fmt: skip
                await self._on(spec, p, "rolling.restart_units", f"{p}-restart",
                               {"units": units}, MEMBER_WORK)  # fmt: skip
                await self._unit(spec, p, "start", "keepalived", f"{p}-keepalived")
                state = await self._proxy(spec, p, f"{p}-check")
                if state.haproxy != "active" or state.keepalived != "active":
                    raise ApplicationError(f"{p}: haproxy {state.haproxy}, keepalived "
                                           f"{state.keepalived} after its upgrade",
                                           type="ProxyUnhealthy", non_retryable=True)  # fmt: skip
        finally:
            log = await self._end_probe(probe)
        after = {p: (await self._on(spec, p, "rolling.package_versions", f"{p}-versions",
                                    {"names": ",".join(resolved.target)}, HOST_CHECK)).facts
                 for p in proxies}  # fmt: skip
        behind = [p for p, v in after.items()
                  if any(v.get(n) != want for n, want in resolved.target.items())]  # fmt: skip
        if behind:
            raise ApplicationError(f"not on the target versions: {', '.join(behind)}",
                                   type="UpgradeStopped", non_retryable=True)  # fmt: skip
        states = [await self._proxy(spec, p, f"end-{p}") for p in proxies]
        cost, verdict = rolling_cost(log), judge(log)
        self.tracker.done(f"{', '.join(order)} upgraded; writes down {cost.write_down_s:.1f} s")
        return ProxyUpgradeReport(
            cluster=spec.cluster, workflow_id=workflow.info().workflow_id, started_at=self.started,
            finished_at=workflow.now(), packages=resolved.target,
            versions_after={p: {k: str(v) for k, v in f.items()} for p, f in after.items()},
            order=order, vip_holder=next((s.host for s in states if s.holds_vip), ""),
            cost=cost, verdict=verdict,
        )  # fmt: skip

    async def _proxy(self, spec: ClusterSpec, host: str, key: str) -> ProxyStatus:
        return await self.tracker.run(
            key, "HAProxy and keepalived", host,
            STATUS_READ.execute("status.proxy", HostStep(spec=spec, host=host), ProxyStatus,
                                summary="proxy status"),
            lambda s: (StepState.ok, f"haproxy {s.haproxy}, keepalived {s.keepalived}"
                       + (", holds the VIP" if s.holds_vip else "")),
        )  # fmt: skip

    async def _unit(self, spec: ClusterSpec, host: str, action: str, unit: str,
                    key: str) -> None:  # fmt: skip
        await self._on(spec, host, "drill.systemctl", key, {"action": action, "units": unit})
