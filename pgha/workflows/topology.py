"""AddNode and RemoveNode: change which database hosts the cluster has, one at a time, on
a whole cluster. Database-only hosts for now (etcd membership changes are not built).

add-node converges the whole cluster to the spec that lists the new host (provision as a
child workflow: packages, pgBackRest certificates, every member's pg_hba, the new member
cloned by Patroni, HAProxy's backends), then checks it streams. remove-node takes the
host out of service first (a switchover if it leads, then drained), converges the rest
to the spec without it (HAProxy, pgBackRest, pg_hba), stops and disables Patroni there
(its data stays), and waits until the cluster has forgotten it (member key, slot).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.rolling_order import NoRollingOrder, rolling_order
    from pgha.progress import StepState
    from pgha.provision_models import ProvisionInput, ProvisionResult
    from pgha.spec import ClusterSpec, Role
    from pgha.status_models import PatroniStatus
    from pgha.steps import HostStep, StepResult
    from pgha.topology_models import NodeInput, NodeReport
    from pgha.workflows.policy import CONVERGE
    from pgha.workflows.tracker import failure_text

from pgha.workflows.rolling_steps import RollingSteps, RollingStopped, leader_of

#: A new member copies the whole database (pg_basebackup): give it time.
JOIN_WAIT_S = 900.0


class _NodeOperation(RollingSteps):
    operation = ""

    def __init__(self) -> None:
        self._init_rolling(self.operation)

    def _begin(self, inp: NodeInput) -> None:
        self._open(inp.spec, "gate", inp.max_lag_bytes)
        if why := inp.problem():
            raise self._refuse(why)

    def _refuse(self, why: str) -> ApplicationError:
        self.tracker.done(f"REFUSED: {why}")
        return ApplicationError(f"{self.operation} refused, nothing was changed: {why}",
                                type="NodeRefused", non_retryable=True)  # fmt: skip

    def _report(self, inp: NodeInput, action: str, view: PatroniStatus,
                next_steps: list[str]) -> NodeReport:  # fmt: skip
        members = [m.name for m in view.members]
        self.tracker.done(f"{inp.host} {action}; members: {', '.join(members)}")
        return NodeReport(
            cluster=inp.spec.cluster, workflow_id=workflow.info().workflow_id, host=inp.host,
            action=action, started_at=self.started, finished_at=workflow.now(),
            members=members, leader=leader_of(view), next_steps=next_steps,
        )  # fmt: skip

    async def _converge(self, spec: ClusterSpec, host: str, activity: str) -> None:
        await self.tracker.run(
            f"{activity}-{host}", activity, host,
            CONVERGE.execute(activity, HostStep(spec=spec, host=host), StepResult,
                             summary=f"{activity} on {host}"),
            lambda s: (StepState.changed if s.changed else StepState.ok, s.summary),
        )  # fmt: skip


@workflow.defn(name="AddNode")
class AddNode(_NodeOperation):
    """Runbook: the host is a database-only host of the spec and not a member yet, the
    cluster (without it) is whole; provision the spec that has it; wait until every member,
    the new one included, streams within the lag bound."""

    operation = "add-node"

    @workflow.run
    async def run(self, inp: NodeInput) -> NodeReport:
        self._begin(inp)
        try:
            view = await self._whole(inp.without_host(), "gate")
        except ActivityError as err:
            raise self._refuse(failure_text(err)) from None
        if any(m.name == inp.host for m in view.members):
            raise self._refuse(f"{inp.host} is a member of {inp.spec.cluster} already")
        self.tracker.phase("provision")
        await self.tracker.run(
            "provision", f"provision the spec with {inp.host}", None,
            workflow.execute_child_workflow(
                "Provision", ProvisionInput(spec=inp.spec), result_type=ProvisionResult,
                id=f"{workflow.info().workflow_id}/provision",
            ),
            lambda r: (StepState.changed if r.changed else StepState.ok,
                       f"{r.changed} of {r.steps} steps changed something"),
        )  # fmt: skip
        self.tracker.phase("join")
        view = await self._whole(inp.spec, "joined", within=JOIN_WAIT_S)
        return self._report(inp, "added", view, [])


@workflow.defn(name="RemoveNode")
class RemoveNode(_NodeOperation):
    """Runbook: the host is a database-only member and at least two others remain; the
    cluster is whole; if it leads, switch over to the best other replica; drain it; give
    the rest the spec without it (HAProxy, pgBackRest's repository, every member's
    pg_hba); stop and disable Patroni on it (data kept); wait until no member key and no
    replication slot is left for it."""

    operation = "remove-node"

    @workflow.run
    async def run(self, inp: NodeInput) -> NodeReport:
        self._begin(inp)
        rest = inp.without_host()
        if len(rest.hosts_with(Role.postgres)) < 2:
            raise self._refuse(f"without {inp.host} fewer than two database hosts would be left")
        try:
            view = await self._whole(inp.spec, "gate")
            others = [h.name for h in rest.hosts_with(Role.postgres)]
            plan = rolling_order(view, [*others, inp.host])
        except (ActivityError, NoRollingOrder) as err:
            raise self._refuse(failure_text(err) if isinstance(err, ActivityError)
                               else str(err)) from None  # fmt: skip
        try:
            if plan.primary == inp.host:
                candidate = next(n for n in plan.replicas[::-1] if n != inp.host)
                await self._switchover(inp.spec, inp.host, candidate)
            await self._drain(inp.spec, inp.host, True)
        except RollingStopped as err:
            self.tracker.done(f"STOPPED: {err}")
            raise ApplicationError(f"remove-node stopped: {err}", type="NodeStopped",
                                   non_retryable=True) from None  # fmt: skip
        self.tracker.phase("the rest without it")
        for h in rest.hosts:
            if Role.haproxy in h.roles:
                await self._converge(rest, h.name, "haproxy.ensure_config")
            if Role.backup_repo in h.roles and rest.backup.enabled:
                await self._converge(rest, h.name, "pgbackrest.ensure_config")
            if Role.postgres in h.roles:
                await self._converge(rest, h.name, "patroni.ensure_config")
        self.tracker.phase("retire")
        await self._converge(inp.spec, inp.host, "topology.retire_member")
        survivor = leader_of(await self._whole(rest, "without-it", within=180))
        await self.tracker.run(
            "gone", f"the cluster forgot {inp.host}", survivor,
            CONVERGE.execute("topology.wait_member_gone", HostStep(spec=rest, host=survivor,
                             params={"member": inp.host}), StepResult, summary="member gone"),
            lambda s: (StepState.ok, s.summary),
        )  # fmt: skip
        view = await self._whole(rest, "end-whole", within=60)
        return self._report(inp, "removed", view, [
            f"remove {inp.host} from the spec file now (a provision with it listed would add "
            "it back)",
            f"its data directory ({inp.spec.postgres.data_path}) is still on {inp.host}; "
            "delete it by hand when you no longer need it",
        ])  # fmt: skip
