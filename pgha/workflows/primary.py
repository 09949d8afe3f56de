"""Finding the cluster's healthy primary through Patroni, for operations that need one.
Deterministic: it only runs activities."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.spec import ClusterSpec, Role
    from pgha.status_models import LEADER_ROLES, PatroniStatus
    from pgha.steps import HostStep
    from pgha.workflows.policy import STATUS_READ
    from pgha.workflows.tracker import failure_text


async def healthy_primary(spec: ClusterSpec) -> str:
    """The name of the host whose PostgreSQL is the running Patroni leader, asking each
    member's REST API in turn until one answers.

    :raises ApplicationError: NoHealthyPrimary (non-retryable), naming what Patroni said
        or which members did not answer: the operation is refused, nothing was changed.
    """
    unanswered: list[str] = []
    for host in [h.name for h in spec.hosts_with(Role.postgres)]:
        try:
            view = await STATUS_READ.execute(
                "status.patroni", HostStep(spec=spec, host=host), PatroniStatus,
                summary=f"Patroni's view from {host}",
            )  # fmt: skip
        except ActivityError as err:
            unanswered.append(f"{host}: {failure_text(err)}")
            continue
        leaders = [m for m in view.members if m.role in LEADER_ROLES]
        running = [m for m in leaders if m.state == "running"]
        if running:
            return running[0].name
        members = ", ".join(f"{m.name} {m.role} {m.state}" for m in view.members)
        raise ApplicationError(
            f"cluster {spec.cluster} has no healthy primary (Patroni on {view.source}: "
            f"{members or 'no members'}); nothing was started. Check `pgha status --cluster "
            f"{spec.cluster}` and try again once a leader runs.",
            type="NoHealthyPrimary",
            non_retryable=True,
        )
    raise ApplicationError(
        f"cluster {spec.cluster}: no Patroni member answered ({'; '.join(unanswered)}); "
        "nothing was started",
        type="NoHealthyPrimary",
        non_retryable=True,
    )
