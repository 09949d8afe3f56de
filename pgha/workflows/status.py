"""ClusterStatus: read every part of the live cluster at once; report what did not answer."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.spec import ClusterSpec, Role
    from pgha.status_models import (
        BackupStatus,
        ClusterStatus,
        EtcdStatus,
        PatroniStatus,
        ProxyStatus,
        StatusInput,
        Unreadable,
    )
    from pgha.steps import HostStep
    from pgha.workflows.policy import STATUS_READ

T = TypeVar("T")


@workflow.defn(name="ClusterStatus")
class ClusterStatusWorkflow:
    """Runbook: ask Patroni (first member that answers), etcd, each proxy and the backup
    repository in parallel; a part that does not answer is listed, never guessed."""

    @workflow.run
    async def run(self, inp: StatusInput) -> ClusterStatus:
        spec = inp.spec
        status = ClusterStatus(cluster=spec.cluster)
        proxies = [h.name for h in spec.hosts_with(Role.haproxy)]
        repos = [h.name for h in spec.hosts_with(Role.backup_repo)]
        patroni, etcd, backups, *proxy = await asyncio.gather(
            self._first("patroni", spec, [h.name for h in spec.hosts_with(Role.postgres)],
                        "status.patroni", PatroniStatus, status),
            self._first("etcd", spec, [h.name for h in spec.hosts_with(Role.etcd)],
                        "status.etcd", EtcdStatus, status),
            self._first("backups", spec, repos, "status.backups", BackupStatus, status)
            if spec.backup.enabled else _none(),
            *(self._first("proxy", spec, [p], "status.proxy", ProxyStatus, status)
              for p in proxies),
        )  # fmt: skip
        return status.model_copy(
            update={
                "patroni": patroni,
                "etcd": etcd,
                "backups": backups,
                "proxies": [p for p in proxy if p is not None],
            }
        )

    async def _first(
        self, part: str, spec: ClusterSpec, hosts: list[str], activity: str,
        result_type: type[T], status: ClusterStatus,
    ) -> T | None:  # fmt: skip
        """The first host of ``hosts`` that answers; each failure is recorded."""
        for host in hosts:
            try:
                return await STATUS_READ.execute(
                    activity, HostStep(spec=spec, host=host), result_type,
                    summary=f"{part} from {host}",
                )  # fmt: skip
            except ActivityError as err:
                cause = err.cause
                message = cause.message if isinstance(cause, ApplicationError) else str(err)
                status.unreadable.append(Unreadable(part=part, host=host, error=message))
        return None


async def _none() -> None:
    return None
