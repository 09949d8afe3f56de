"""Helpers of the backup and restore-verification lab tests: operations run through a real
worker, and the repository and databases read past pgha (docker exec)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from pgha.backup_models import (
    BackupInput,
    BackupResult,
    BackupType,
    VerifyReport,
    VerifyRestoreInput,
)
from pgha.operations import BACKUP, VERIFY_RESTORE, Operation, start_operation
from pgha.spec import ClusterSpec, Role
from tests.lab.helpers import docker_exec


class Lab:
    def __init__(self, env: WorkflowEnvironment, spec: ClusterSpec, task_queue: str) -> None:
        self.env, self.spec, self.task_queue = env, spec, task_queue

    async def run(self, op: Operation, arg: Any) -> Any:
        handle = await start_operation(
            self.env.client, op, self.spec.cluster, arg, task_queue=self.task_queue
        )
        return await handle.result()

    async def backup(self, kind: BackupType) -> BackupResult:
        result = await self.run(BACKUP, BackupInput(spec=self.spec, type=kind))
        return BackupResult.model_validate(result)

    async def verify(self, **kw: Any) -> VerifyReport:
        result = await self.run(VERIFY_RESTORE, VerifyRestoreInput(spec=self.spec, **kw))
        return VerifyReport.model_validate(result)

    async def failed_verify(self, **kw: Any) -> ApplicationError:
        with pytest.raises(WorkflowFailureError) as err:
            await self.verify(**kw)
        cause = err.value.cause
        assert isinstance(cause, ApplicationError), cause
        return cause

    @property
    def repo(self) -> str:
        return self.spec.hosts_with(Role.backup_repo)[0].name

    @property
    def verify_host(self) -> str:
        host = self.spec.verify_host()
        assert host is not None
        return host.name


async def sh(host: str, script: str) -> str:
    code, out = await docker_exec(host, "sh", "-c", script)
    assert code == 0, f"{host}: `{script}` exited {code}: {out}"
    return out


async def info(lab: Lab) -> dict[str, Any]:
    out = await sh(lab.repo, f"runuser -u postgres -- pgbackrest --stanza={lab.spec.stanza} "
                             "--output=json info")  # fmt: skip
    (stanza,) = json.loads(out)
    return dict(stanza)


async def primary(lab: Lab) -> str:
    for host in [h.name for h in lab.spec.hosts_with(Role.postgres)]:
        code, out = await docker_exec(host, "runuser", "-u", "postgres", "--", "psql", "-XAtc",
                                      "SELECT pg_is_in_recovery()")  # fmt: skip
        if code == 0 and out == "f":
            return host
    pytest.fail("no primary in the lab")


async def psql(host: str, sql: str, db: str = "app") -> str:
    code, out = await docker_exec(host, "runuser", "-u", "postgres", "--", "psql", "-XAtq",
                                  "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql)  # fmt: skip
    assert code == 0, f"{host}: psql failed: {out}"
    return out
