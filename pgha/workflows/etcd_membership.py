"""EtcdAdd and EtcdRemove: grow or shrink the etcd cluster by one member, keeping the
quorum at every step: only from a healthy cluster, one `member add` before the new member
first starts, leadership moved away from a member before it is removed, never below
three members, and Patroni pointed at the new member list (a reload) so it never waits
on an endpoint that is going away."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.progress import Progress, StepState
    from pgha.spec import ClusterSpec, Role
    from pgha.steps import HostStep, StepResult
    from pgha.topology_models import EtcdMemberInput, EtcdMemberReport
    from pgha.workflows.policy import CONVERGE, LONG_CONVERGE
    from pgha.workflows.tracker import Tracker, failure_text


class _EtcdChange:
    operation = ""

    def __init__(self) -> None:
        self.tracker = Tracker(self.operation, "")

    @workflow.query(name="progress")
    def progress(self) -> Progress:
        return self.tracker.progress

    def _begin(self, inp: EtcdMemberInput) -> None:
        self.tracker = Tracker(self.operation, inp.spec.cluster)
        self.tracker.tag_search_attributes()
        self.tracker.phase("gate")
        if why := inp.problem():
            raise self._refuse(why)

    def _refuse(self, why: str) -> ApplicationError:
        self.tracker.done(f"REFUSED: {why}")
        return ApplicationError(f"{self.operation} refused, nothing was changed: {why}",
                                type="EtcdChangeRefused", non_retryable=True)  # fmt: skip

    async def _on(
        self, spec: ClusterSpec, host: str, activity: str, key: str,
        params: dict[str, str] | None = None, long: bool = False,
    ) -> StepResult:  # fmt: skip
        policy = LONG_CONVERGE if long else CONVERGE
        return await self.tracker.run(
            key, activity, host,
            policy.execute(activity, HostStep(spec=spec, host=host, params=params or {}),
                           StepResult, summary=f"{activity} on {host}"),
            lambda s: (StepState.changed if s.changed else StepState.ok, s.summary),
        )  # fmt: skip

    async def _healthy(self, spec: ClusterSpec, key: str) -> StepResult:
        first = spec.hosts_with(Role.etcd)[0].name
        return await self._on(spec, first, "etcd.check_cluster", key)

    async def _patroni(self, spec: ClusterSpec, key: str) -> None:
        for h in spec.hosts_with(Role.postgres):
            await self._on(spec, h.name, "patroni.ensure_config", f"{key}-{h.name}")

    async def _members_env(self, spec: ClusterSpec, token: str, key: str) -> None:
        """Every member's env file with the new initial-cluster line (no restart for it)."""
        for h in spec.hosts_with(Role.etcd):
            await self._on(spec, h.name, "etcd.ensure_member", f"{key}-{h.name}",
                           {"token": token}, long=True)  # fmt: skip

    def _report(self, inp: EtcdMemberInput, action: str, health: StepResult,
                next_steps: list[str]) -> EtcdMemberReport:  # fmt: skip
        members = [str(m) for m in health.facts.get("members", [])]
        leader = str(health.facts.get("leader", ""))
        self.tracker.done(f"{inp.host} {action}; etcd members: {', '.join(members)} "
                          f"({leader} leads)")  # fmt: skip
        return EtcdMemberReport(cluster=inp.spec.cluster, workflow_id=workflow.info().workflow_id,
                                host=inp.host, action=action, members=members, leader=leader,
                                next_steps=next_steps)  # fmt: skip


@workflow.defn(name="EtcdAdd")
class EtcdAdd(_EtcdChange):
    """Runbook: the etcd cluster without the host is healthy and as the spec has it; the
    host gets its packages; `member add`; the host starts as an existing-cluster member
    and becomes healthy; the others' env files follow; the cluster is checked against the
    spec; Patroni on every database host is pointed at the new member list."""

    operation = "etcd-add"

    @workflow.run
    async def run(self, inp: EtcdMemberInput) -> EtcdMemberReport:
        self._begin(inp)
        before = inp.without_member()
        if not before.hosts_with(Role.etcd):
            raise self._refuse("there is no running etcd member to add it to")
        first = before.hosts_with(Role.etcd)[0].name
        try:
            await self._healthy(before, "gate-health")
            state = await self._on(before, first, "etcd.read_state", "token")
        except ActivityError as err:
            raise self._refuse(failure_text(err)) from None
        token = str(state.facts.get("token", ""))
        if not token:
            raise self._refuse(f"{first} has no etcd cluster token: provision the cluster first")
        self.tracker.phase("join")
        await self._on(inp.spec, inp.host, "packages.ensure_host", "packages", long=True)
        await self._on(inp.spec, first, "etcd.add_member", "member-add", {"member": inp.host})
        await self._on(inp.spec, inp.host, "etcd.ensure_member", "start",
                       {"token": token, "state": "existing"}, long=True)  # fmt: skip
        await self._members_env(inp.spec, token, "env")
        health = await self._healthy(inp.spec, "health")
        self.tracker.phase("patroni")
        await self._patroni(inp.spec, "patroni")
        return self._report(inp, "added", health, [])


@workflow.defn(name="EtcdRemove")
class EtcdRemove(_EtcdChange):
    """Runbook: the etcd cluster is healthy and as the spec has it, and at least three
    members stay; Patroni on every database host stops using the member; leadership moves
    away from it if it leads, then `member remove`; etcd stopped and disabled on the host,
    its data set aside; the others' env files follow; the cluster is checked against the
    spec without it."""

    operation = "etcd-remove"

    @workflow.run
    async def run(self, inp: EtcdMemberInput) -> EtcdMemberReport:
        self._begin(inp)
        after = inp.without_member()
        if len(after.hosts_with(Role.etcd)) < 3:
            raise self._refuse(f"without {inp.host} fewer than three etcd members would be left: "
                               "losing one more would lose the quorum; add one first")  # fmt: skip
        survivor = after.hosts_with(Role.etcd)[0].name
        try:
            await self._healthy(inp.spec, "gate-health")
            state = await self._on(inp.spec, survivor, "etcd.read_state", "token")
        except ActivityError as err:
            raise self._refuse(failure_text(err)) from None
        token = str(state.facts.get("token", ""))
        self.tracker.phase("patroni")
        await self._patroni(after, "patroni")
        self.tracker.phase("remove")
        await self._on(inp.spec, survivor, "etcd.remove_member", "member-remove",
                       {"member": inp.host})  # fmt: skip
        stamp = workflow.now().strftime("%Y%m%dT%H%M%SZ")
        await self._on(inp.spec, inp.host, "etcd.retire_member", "retire", {"stamp": stamp})
        await self._members_env(after, token, "env")
        health = await self._healthy(after, "health")
        return self._report(inp, "removed", health, [
            f"remove the etcd role of {inp.host} from the spec file now (a provision with it "
            "listed would try to bootstrap it)",
        ])  # fmt: skip
