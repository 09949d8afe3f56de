"""BackupsView: what `pgha backups` shows, read at once: the repository's backup sets and the
last restore verification. Read-only; changes nothing and takes no lock.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.backup_models import BackupSets, BackupsOverview, BackupsOverviewInput, VerifyReport
    from pgha.spec import ClusterSpec, Role
    from pgha.steps import HostStep
    from pgha.workflows.policy import STATUS_READ


@workflow.defn(name="BackupsView")
class BackupsView:
    """Runbook: ask the backup-repo host for the sets and the report store for the last
    verification, in parallel. A repository that cannot be read is reported in
    ``unreadable``, never a failure: the last verification is still worth showing then."""

    @workflow.run
    async def run(self, inp: BackupsOverviewInput) -> BackupsOverview:
        spec = inp.spec
        (sets, unreadable), last = await asyncio.gather(
            self._sets(spec), self._last_verification(spec.cluster)
        )
        return BackupsOverview(
            cluster=spec.cluster,
            sets=sets,
            unreadable=unreadable,
            last_verification=last,
            verification_max_age_hours=spec.backup.verify.max_age_hours,
        )

    async def _sets(self, spec: ClusterSpec) -> tuple[BackupSets | None, str]:
        """The sets, or None and why they could not be read."""
        repos = [h.name for h in spec.hosts_with(Role.backup_repo)]
        if not spec.backup.enabled or not repos:
            return None, f"cluster {spec.cluster} has no backups (backup.enabled is false)"
        host = repos[0]  # the spec allows exactly one repository host
        try:
            sets = await STATUS_READ.execute(
                "backup.list_sets", HostStep(spec=spec, host=host), BackupSets,
                summary=f"backup sets from {host}",
            )  # fmt: skip
        except ActivityError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            return None, f"backup repository on {host}: {message}"
        return sets, ""

    async def _last_verification(self, cluster: str) -> VerifyReport | None:
        # The activity returns None when there is no report yet; the converter decodes a
        # null payload to None whatever the declared type, so VerifyReport is enough here.
        last: VerifyReport | None = await STATUS_READ.execute(
            "reports.latest_verification", cluster, VerifyReport,
            summary=f"last restore verification of {cluster}",
        )  # fmt: skip
        return last
