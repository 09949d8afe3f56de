"""Preflight: check every host of a cluster in parallel before anything is changed. Read-only."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.preflight import (
        Finding,
        HostReport,
        PreflightInput,
        PreflightResult,
        Severity,
        host_check_input,
    )
    from pgha.progress import Progress, StepState
    from pgha.spec import ClusterSpec
    from pgha.workflows.policy import HOST_CHECK
    from pgha.workflows.tracker import Tracker


SSH_FAILURES = {
    "HostUnreachable",
    "HostKeyMismatch",
    "HostKeyUnknown",
    "HostLoginRefused",
    "SshKeyUnusable",
    "SudoRefused",
}


@workflow.defn(name="Preflight")
class Preflight:
    """Runbook: log in to every host at once; look at OS, CPU, memory, disk on the data
    paths, systemd, clock sync, the ports the roles need, and the package source; stop the
    operation if anything blocks."""

    def __init__(self) -> None:
        self.tracker = Tracker("preflight", "")

    @workflow.query(name="progress")
    def progress(self) -> Progress:
        return self.tracker.progress

    @workflow.run
    async def run(self, inp: PreflightInput) -> PreflightResult:
        spec = inp.spec
        self.tracker = Tracker("preflight", spec.cluster)
        self.tracker.tag_search_attributes()
        for h in spec.hosts:
            self.tracker.add(h.name, "check host", h.name)
        self.tracker.phase(f"checking {len(spec.hosts)} hosts")
        reports = await asyncio.gather(*(self._check(spec, h.name) for h in spec.hosts))
        result = PreflightResult(cluster=spec.cluster, hosts=list(reports))
        blocking = result.blocking
        if blocking:
            self.tracker.done(f"{len(blocking)} blocking finding(s)")
            raise ApplicationError(
                f"preflight of cluster {spec.cluster} found {len(blocking)} blocking "
                "problem(s):\n" + "\n".join(f"- {b}" for b in blocking),
                result.model_dump(mode="json"),
                type="PreflightBlocked",
                non_retryable=True,
            )
        self.tracker.done(f"{len(reports)} hosts ready")
        return result

    async def _check(self, spec: ClusterSpec, name: str) -> HostReport:
        return await check_host(self.tracker, spec, name, key=name)


async def check_host(tracker: Tracker, spec: ClusterSpec, name: str, *, key: str) -> HostReport:
    """Check one host as progress step ``key``. A host that cannot be reached or checked
    becomes a blocking finding, so preflight lists every problem instead of the first."""
    tracker.start(key, "ssh")
    host = spec.host(name)
    try:
        report = await HOST_CHECK.execute(
            "preflight.check_host",
            host_check_input(spec, name),
            HostReport,
            summary=f"preflight {name}",
        )
    except ActivityError as err:
        cause = err.cause if isinstance(err.cause, ApplicationError) else None
        message = cause.message if cause else str(err)
        # Reaching the host failed, or checking it did; say which.
        check = "ssh" if cause and cause.type in SSH_FAILURES else "check"
        report = HostReport(
            host=name,
            address=str(host.address),
            roles=host.roles,
            findings=[Finding(check=check, severity=Severity.blocking, message=message)],
        )
    warnings = [f for f in report.findings if f.severity == Severity.warning]
    if report.blocking:
        state, detail = StepState.failed, "; ".join(f.message for f in report.blocking)
    elif warnings:
        state, detail = StepState.warning, "; ".join(f.message for f in warnings)
    else:
        state, detail = StepState.ok, "ready"
    tracker.finish(key, state, detail)
    return report
