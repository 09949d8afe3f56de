"""What `pgha run ...` prints when an operation ends: one summariser per operation, from its
result (or, for the operations that attach one, the report a failure carries). Pure:
models in, rich renderables out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType

from pgha.backup_models import BackupResult, VerifyReport
from pgha.checks.preflight import PreflightResult
from pgha.drill_models import DrillReport
from pgha.drill_text import drill_summary
from pgha.event_models import PostFailoverReport
from pgha.operations import (
    ADD_NODE,
    BACKUP,
    DRILL,
    ETCD_ADD,
    ETCD_REMOVE,
    ETCD_UPGRADE,
    PATRONI_UPGRADE,
    PGBACKREST_UPGRADE,
    POST_FAILOVER,
    PREFLIGHT,
    PROVISION,
    PROXY_UPGRADE,
    RECONFIGURE,
    REMOVE_NODE,
    SWITCHOVER,
    UPGRADE,
    VERIFY_RESTORE,
)
from pgha.provision_models import ProvisionResult
from pgha.reconfigure_models import ReconfigureReport
from pgha.reconfigure_text import reconfigure_summary
from pgha.report_text import backup_summary, verify_summary
from pgha.rolling_models import (
    EtcdUpgradeReport,
    PatroniUpgradeReport,
    PgbackrestUpgradeReport,
    ProxyUpgradeReport,
    RollingCost,
    SwitchoverReport,
    UpgradeReport,
)
from pgha.rolling_text import upgrade_summary
from pgha.topology_models import EtcdMemberReport, NodeReport
from pgha.views import preflight_report, provision_report


def _preflight(result: Any) -> RenderableType:
    report = PreflightResult.model_validate(result)
    return Group(preflight_report(report),
                 f"[green]preflight passed: {len(report.hosts)} hosts ready[/]")  # fmt: skip


def _node(result: Any) -> str:
    n = NodeReport.model_validate(result)
    lines = [f"{n.host} {n.action}; members: {', '.join(n.members)} ({n.leader} leads)"]
    return "\n".join([*lines, *(f"next: {line}" for line in n.next_steps)])


def _etcd_member(result: Any) -> str:
    e = EtcdMemberReport.model_validate(result)
    lines = [f"{e.host} {e.action}; etcd members: {', '.join(e.members)} ({e.leader} leads)"]
    return "\n".join([*lines, *(f"next: {line}" for line in e.next_steps)])


def _down(cost: RollingCost | None) -> str:
    return f"writes down {cost.write_down_s:.2f} s" if cost else "no write stopped"


def _patroni_upgrade(result: Any) -> str:
    pu = PatroniUpgradeReport.model_validate(result)
    pg = ", ".join(pu.postgres_restarted) or "none"
    return (f"patroni {pu.version}: restarted {', '.join(pu.restarted) or 'none'} in "
            f"maintenance mode; PostgreSQL restarted on: {pg}")  # fmt: skip


def _etcd_upgrade(result: Any) -> str:
    eu = EtcdUpgradeReport.model_validate(result)
    lost = f", {len(eu.verdict.lost)} acknowledged lost" if eu.verdict else ""
    return (f"etcd {eu.version}: restarted {', '.join(eu.restarted) or 'none'} (etcd leader "
            f"{eu.leader_before} -> {eu.leader_after}); Patroni leader {eu.patroni_leader_before}"
            f" -> {eu.patroni_leader_after}; {_down(eu.cost)}{lost}")  # fmt: skip


def _pgbackrest_upgrade(result: Any) -> str:
    pb = PgbackrestUpgradeReport.model_validate(result)
    check = f"pgbackrest check {pb.check_s:.1f} s" if pb.check_s is not None else "backups off"
    server = "; TLS server restarted" if pb.server_restarted else ""
    on = ", ".join(pb.installed_on) or "none"
    return (f"pgbackrest {pb.version} on {len(pb.versions_after)} hosts (installed on {on})"
            f"{server}; {check}; {_down(pb.cost)}")  # fmt: skip


def _proxy_upgrade(result: Any) -> str:
    pr = ProxyUpgradeReport.model_validate(result)
    return (f"proxies {' then '.join(pr.order)} on "
            f"{', '.join(f'{n} {v}' for n, v in pr.packages.items())}; {_down(pr.cost)}; "
            f"{pr.vip_holder} holds the VIP")  # fmt: skip


def _switchover(result: Any) -> str:
    r = SwitchoverReport.model_validate(result)
    lost = f", {len(r.verdict.lost)} acknowledged lost" if r.verdict else ""
    return f"switchover {r.old_leader} -> {r.new_leader}: {_down(r.cost)}{lost}"


SUMMARIES: dict[str, Callable[[Any], RenderableType]] = {
    PREFLIGHT.name: _preflight,
    PROVISION.name: lambda r: provision_report(ProvisionResult.model_validate(r)),
    BACKUP.name: lambda r: backup_summary(BackupResult.model_validate(r)),
    VERIFY_RESTORE.name: lambda r: verify_summary(VerifyReport.model_validate(r)),
    DRILL.name: lambda r: drill_summary(DrillReport.model_validate(r)),
    UPGRADE.name: lambda r: upgrade_summary(UpgradeReport.model_validate(r)),
    RECONFIGURE.name: lambda r: reconfigure_summary(ReconfigureReport.model_validate(r)),
    ADD_NODE.name: _node,
    REMOVE_NODE.name: _node,
    ETCD_ADD.name: _etcd_member,
    ETCD_REMOVE.name: _etcd_member,
    PATRONI_UPGRADE.name: _patroni_upgrade,
    ETCD_UPGRADE.name: _etcd_upgrade,
    PGBACKREST_UPGRADE.name: _pgbackrest_upgrade,
    PROXY_UPGRADE.name: _proxy_upgrade,
    SWITCHOVER.name: _switchover,
    POST_FAILOVER.name: lambda r: PostFailoverReport.model_validate(r).summary_line(),
}

#: Operations whose failure carries their report (ApplicationError details): printed too.
FAILURE_DETAILS = frozenset({VERIFY_RESTORE.name, DRILL.name, UPGRADE.name, RECONFIGURE.name})


def result_text(op_name: str, result: Any) -> RenderableType | None:
    """What to print for ``op_name``'s result; None for operations that print nothing."""
    summarise = SUMMARIES.get(op_name)
    return summarise(result) if summarise else None
