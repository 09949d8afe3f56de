"""Fake activities registered under the real names, and small test workflows."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.preflight import (
        Finding,
        HostCheckInput,
        HostFacts,
        HostReport,
        Severity,
    )
    from pgha.workflows.policy import HOST_CHECK


def healthy_facts() -> HostFacts:
    return HostFacts(
        os_id="debian", os_version="12", os_codename="bookworm",
        os_pretty="Debian GNU/Linux 12 (bookworm)", cpus=2, memory_mb=4096,
        disks={"/var/lib/postgresql/15/main": 40.0}, pid1="systemd", systemd_state="running",
        time_synchronized=True, time_detail="NTPSynchronized=yes", busy_ports={},
        source_urls=["http://deb.debian.org/debian/dists/bookworm/InRelease"], source_errors={},
    )  # fmt: skip


def ok_report(inp: HostCheckInput) -> HostReport:
    return HostReport(
        host=inp.target.name,
        address=inp.target.address,
        roles=inp.roles,
        facts=healthy_facts(),
        findings=[Finding(check="os", severity=Severity.ok, message="Debian 12")],
    )


@activity.defn(name="preflight.check_host")
async def check_host_ok(inp: HostCheckInput) -> HostReport:
    return ok_report(inp)


@activity.defn(name="preflight.check_host")
async def check_host_db2_blocked(inp: HostCheckInput) -> HostReport:
    report = ok_report(inp)
    if inp.target.name != "db2":
        return report
    blocking = Finding(
        check="ports", severity=Severity.blocking, message="port 5432 is in use by nginx"
    )
    return report.model_copy(update={"findings": [*report.findings, blocking]})


@activity.defn(name="preflight.check_host")
async def check_host_proxy1_key_mismatch(inp: HostCheckInput) -> HostReport:
    if inp.target.name == "proxy1":
        raise ApplicationError(
            "host proxy1 (10.0.0.21): the SSH host key does not match",
            type="HostKeyMismatch",
            non_retryable=True,
        )
    return ok_report(inp)


def slow_check_host(log: Path, seconds: float) -> object:
    """A check that takes ``seconds`` while heartbeating and logs every attempt to ``log``."""

    @activity.defn(name="preflight.check_host")
    async def check_host_slow(inp: HostCheckInput) -> HostReport:
        info = activity.info()
        with log.open("a") as f:
            f.write(json.dumps({"host": inp.target.name, "attempt": info.attempt,
                                "pid": os.getpid()}) + "\n")  # fmt: skip
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            activity.heartbeat()
            await asyncio.sleep(0.2)
        return ok_report(inp)

    return check_host_slow


@workflow.defn(name="HoldCluster")
class HoldCluster:
    """Stands in for a long mutating operation: runs until signalled to finish."""

    def __init__(self) -> None:
        self.release = False

    @workflow.signal
    def finish(self) -> None:
        self.release = True

    @workflow.run
    async def run(self, cluster: str) -> str:
        await workflow.wait_condition(lambda: self.release, timeout=timedelta(minutes=5))
        return cluster


@workflow.defn(name="CheckOneHost")
class CheckOneHost:
    """The preflight activity on one host, outside a whole cluster spec (tracing test)."""

    @workflow.run
    async def run(self, inp: HostCheckInput) -> HostReport:
        return await HOST_CHECK.execute("preflight.check_host", inp, HostReport, summary="one")
