"""The `pgha` command: parse, start or query workflows, print. Thin: no cluster logic here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import traceback
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer
from opentelemetry import trace
from rich.live import Live
from rich.syntax import Syntax
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError

from pgha.backup_models import (
    BackupInput,
    BackupType,
    VerifyRestoreInput,
)
from pgha.checks.preflight import PreflightInput, PreflightResult
from pgha.cli_support import State, console, err_console, print_error, run_async
from pgha.drill_models import Approval, DrillInput, Scenario
from pgha.errors import OperationFailed, PghaError, SpecError, TemporalUnavailable
from pgha.event_models import PostFailoverInput
from pgha.guard_cli import event_app, events, guard_app
from pgha.lab.cli import lab_app
from pgha.operations import (
    ADD_NODE,
    BACKUP,
    DRILL,
    ETCD_ADD,
    ETCD_REMOVE,
    ETCD_UPGRADE,
    OPERATIONS,
    PATRONI_UPGRADE,
    PGBACKREST_UPGRADE,
    POST_FAILOVER,
    PREFLIGHT,
    PROVISION,
    PROXY_UPGRADE,
    RECONFIGURE,
    REMOVE_NODE,
    STATUS,
    SWITCHOVER,
    UPGRADE,
    VERIFY_RESTORE,
    Operation,
    lock_id,
    start_operation,
)
from pgha.progress import Progress, StepState
from pgha.provision_models import ProvisionInput
from pgha.reconfigure_models import ReconfigureInput
from pgha.report_cli import backups, report
from pgha.result_text import FAILURE_DETAILS, result_text
from pgha.rolling_models import (
    Decision,
    DecisionAction,
    EtcdUpgradeInput,
    PatroniUpgradeInput,
    PgbackrestUpgradeInput,
    ProxyUpgradeInput,
    SwitchoverInput,
    UpgradeInput,
)
from pgha.schedule_cli import schedule_app
from pgha.settings import EMBEDDED_ADDRESS, TemporalSettings, temporal_settings
from pgha.spec import Role, load_spec, spec_to_yaml
from pgha.status_models import ClusterStatus, StatusInput
from pgha.temporal import connect, embedded_server_command, server_paths, server_running
from pgha.topology_models import EtcdMemberInput, NodeInput
from pgha.views import preflight_report, progress_view, status_report
from pgha.worker import (
    in_process_worker,
    in_process_worker_if_needed,
    run_worker,
    worker_polling,
)

app = typer.Typer(
    help="Provision and operate highly available PostgreSQL clusters with durable workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
spec_app = typer.Typer(help="Cluster specs (clusters/<name>.yaml).", no_args_is_help=True)
run_app = typer.Typer(help="Start an operation on a cluster and follow it.", no_args_is_help=True)
app.add_typer(spec_app, name="spec")
app.add_typer(run_app, name="run")
app.add_typer(lab_app, name="lab")
app.add_typer(schedule_app, name="schedule")
app.add_typer(guard_app, name="guard")
app.add_typer(event_app, name="event")
app.command("events")(events)
app.command("report")(report)
app.command("backups")(backups)

#: How long `pgha run` waits for a polling worker to pick the workflow up before it runs one.
NO_WORKER_GRACE_S = 8.0


ClusterOpt = Annotated[
    str,
    typer.Option(
        "--cluster", "-c", help="Cluster name (reads clusters/NAME.yaml) or a path to a spec."
    ),
]
DetachOpt = Annotated[
    bool, typer.Option("--detach", help="Return at once with the workflow id; don't follow.")
]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    State.debug = debug
    # The in-process worker logs every retried activity with a traceback; the progress view
    # already shows the failure. --debug brings them back.
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("temporalio").setLevel(logging.DEBUG if debug else logging.CRITICAL)


# ---------------------------------------------------------------- spec


@spec_app.command("check")
def spec_check(cluster: ClusterOpt) -> None:
    """Validate a spec and print it with every default filled in (exit 2 when invalid)."""

    async def go() -> None:
        spec = load_spec(cluster)
        console.print(Syntax(spec_to_yaml(spec), "yaml", background_color="default"))
        console.print(f"[green]{cluster}: valid[/]")

    run_async(go)


# ---------------------------------------------------------------- server and worker


@app.command()
def server(
    headless: Annotated[bool, typer.Option(help="Without the Web UI.")] = False,
) -> None:
    """Run the embedded Temporal dev server in the foreground (SQLite in pgha's state dir)."""
    db, _ = server_paths()
    settings = temporal_settings()
    if not settings.embedded:
        err_console.print("PGHA_TEMPORAL_ADDRESS is set: pgha uses that server, not this one.")
    if server_running():
        err_console.print(
            f"[bold red]error:[/] a Temporal server already listens on {EMBEDDED_ADDRESS} "
            "(started in the background by `pgha run`?); pgha uses it as it is"
        )
        raise typer.Exit(1)
    console.print(f"Temporal dev server: {db}; Web UI {settings.web_ui or '(headless)'}")
    with contextlib.suppress(KeyboardInterrupt):
        raise typer.Exit(subprocess.call(embedded_server_command(db, headless=headless)))


@app.command()
def worker() -> None:
    """Run a worker for every pgha workflow and activity (stops cleanly on SIGTERM)."""
    settings = temporal_settings()

    # A long-lived worker is where activity failures and retries are read: log them.
    logging.getLogger("temporalio").setLevel(logging.INFO)

    async def go() -> None:
        client = await connect(settings)
        console.print(
            f"worker on task queue {settings.task_queue} at {settings.target} "
            f"(namespace {settings.namespace}); SIGTERM stops it"
        )
        try:
            await run_worker(client, settings.task_queue)
        except RuntimeError as err:  # the SDK's "Worker validation failed" and friends
            cause = f": {err.__cause__}" if err.__cause__ else ""
            raise TemporalUnavailable(
                f"the worker could not start on {settings.target} (namespace "
                f"{settings.namespace}): {err}{cause}"
            ) from None

    run_async(go)


# ---------------------------------------------------------------- operations


async def _follow(
    client: Client, settings: TemporalSettings, handle: WorkflowHandle[Any, Any]
) -> Any:
    """Show the workflow's progress query live until it ends; return its result.

    Runs a worker in this process when none polls, or when the one that seemed to poll has
    not picked the workflow up within NO_WORKER_GRACE_S (the server lists a stopped worker
    as a poller for a while).
    """
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        in_process = await stack.enter_async_context(
            in_process_worker_if_needed(client, settings.task_queue)
        )
        started = loop.time()
        result = asyncio.ensure_future(handle.result())
        progress: Progress | None = None
        with Live(
            progress_view(None, handle.id), console=console, refresh_per_second=4, transient=True
        ) as live:
            while not result.done():
                with contextlib.suppress(RPCError, TimeoutError, WorkflowQueryFailedError):
                    progress = await asyncio.wait_for(
                        handle.query("progress", result_type=Progress), 2
                    )
                if progress is None and not in_process:
                    if loop.time() - started > NO_WORKER_GRACE_S:
                        await stack.enter_async_context(
                            in_process_worker(client, settings.task_queue)
                        )
                        in_process = True
                note = "" if in_process else "(waiting for the polling worker)"
                live.update(progress_view(progress, handle.id, note))
                await asyncio.wait({result}, timeout=0.5)
        return await result


def _failure(err: WorkflowFailureError) -> tuple[str, Any]:
    cause: BaseException | None = err.cause
    while (
        cause is not None
        and cause.__cause__ is not None
        and not isinstance(cause, ApplicationError)
    ):
        cause = cause.__cause__
    if isinstance(cause, CancelledError):
        return "the operation was cancelled", None
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details else None
        return cause.message, details
    return str(cause or err), None


async def _operate(op_name: str, cluster: str, arg: Any, detach: bool) -> Any:
    op = OPERATIONS[op_name]
    settings = temporal_settings()
    client = await connect(settings)
    handle = await start_operation(client, op, cluster, arg, task_queue=settings.task_queue)
    console.print(f"started [bold]{op.name}[/] of {cluster}: workflow [cyan]{handle.id}[/]")
    if url := settings.workflow_url(handle.id):
        console.print(f"watch it in the Temporal Web UI: {url}")
    if detach:
        console.print(f"follow it with `pgha watch {handle.id}`")
        if not await worker_polling(client, settings.task_queue):
            console.print(
                f"[yellow]no `pgha worker` polls task queue {settings.task_queue}: the operation "
                "waits until one does (`pgha watch` runs one while it follows)[/]"
            )
        return None
    return await _follow_and_report(client, settings, handle, op_name)


async def _follow_and_report(
    client: Client, settings: TemporalSettings, handle: WorkflowHandle[Any, Any], op_name: str
) -> Any:
    try:
        result = await _follow(client, settings, handle)
    except WorkflowFailureError as err:
        message, details = _failure(err)
        with contextlib.suppress(RPCError, WorkflowQueryFailedError):
            progress = await handle.query("progress", result_type=Progress)
            failed = [s for s in progress.steps if s.state == StepState.failed]
            for step in failed:
                print_error(f"step {step.title} on {step.host or '-'} failed: {step.detail}")
        if op_name == PREFLIGHT.name and isinstance(details, dict):
            report = PreflightResult.model_validate(details)
            console.print(preflight_report(report))
            raise OperationFailed(
                f"preflight of {report.cluster} found {len(report.blocking)} blocking "
                "problem(s), listed above; fix them and run it again"
            ) from None
        if op_name in FAILURE_DETAILS and isinstance(details, dict):
            console.print(result_text(op_name, details) or "")
        raise OperationFailed(f"{op_name} failed: {message}") from None
    if (text := result_text(op_name, result)) is not None:
        console.print(text)
    return result


@run_app.command("preflight")
def run_preflight(cluster: ClusterOpt, detach: DetachOpt = False) -> None:
    """Check every host (SSH, OS, resources, systemd, time, ports, packages). Read-only."""

    async def go() -> None:
        spec = load_spec(cluster)
        await _operate(PREFLIGHT.name, spec.cluster, PreflightInput(spec=spec), detach)

    run_async(go)


@run_app.command("provision")
def run_provision(cluster: ClusterOpt, detach: DetachOpt = False) -> None:
    """Turn the spec's hosts into the cluster (idempotent: a re-run changes nothing)."""

    async def go() -> None:
        spec = load_spec(cluster)
        await _operate(PROVISION.name, spec.cluster, ProvisionInput(spec=spec), detach)

    run_async(go)


@run_app.command("backup")
def run_backup(
    cluster: ClusterOpt,
    backup_type: Annotated[
        BackupType, typer.Option("--type", "-t", help="full, diff (since the last full) or incr.")
    ] = BackupType.full,
    detach: DetachOpt = False,
) -> None:
    """Take a pgBackRest backup (refused without a running primary or working archiving),
    then apply retention."""

    async def go() -> None:
        spec = load_spec(cluster)
        await _operate(BACKUP.name, spec.cluster, BackupInput(spec=spec, type=backup_type), detach)

    run_async(go)


def _target_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-11-26T04:00:00Z)",
            param_hint="--target-time",
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@run_app.command("post-failover")
def run_post_failover(
    cluster: ClusterOpt,
    old_leader: Annotated[
        str, typer.Option("--old-leader", help="The member that led before the failover.")
    ],
    reinit: Annotated[
        bool | None,
        typer.Option(
            "--reinit/--no-reinit",
            help="Reinitialise the old primary when it does "
            "not rejoin (default: the spec's guardian.reinit_old_primary).",
        ),
    ] = None,
    detach: DetachOpt = False,
) -> None:
    """What the guardian runs after an unplanned failover, by hand: the old primary
    rejoined (or reinitialised), the new primary's archiver not held on an old timeline,
    an incremental backup on the new timeline, and its restore verification."""

    async def go() -> None:
        spec = load_spec(cluster)
        members = [h.name for h in spec.hosts_with(Role.postgres)]
        if old_leader not in members:
            raise typer.BadParameter(f"{old_leader!r} is not a database host of cluster "
                                     f"{spec.cluster} ({', '.join(members)})",
                                     param_hint="--old-leader")  # fmt: skip
        # The new leader is whoever leads when the run looks (its report names it).
        inp = PostFailoverInput(spec=spec, old_leader=old_leader, new_leader="", reinit=reinit)
        await _operate(POST_FAILOVER.name, spec.cluster, inp, detach)

    run_async(go)


@run_app.command("verify-restore")
def run_verify_restore(
    cluster: ClusterOpt,
    set_label: Annotated[
        str | None, typer.Option("--set", help="Backup label (default: the newest set).")
    ] = None,
    target_time: Annotated[
        str | None,
        typer.Option(
            "--target-time",
            help="Recover to this time (ISO 8601; UTC unless it has an offset) instead of to "
            "the sentinel written at the start.",
        ),
    ] = None,
    detach: DetachOpt = False,
) -> None:
    """Prove a backup restores: restore it on the verify host, recover it isolated, check
    it (sentinel, pg_amcheck, every page, row counts), remove it, keep a report."""

    async def go() -> None:
        spec = load_spec(cluster)
        inp = VerifyRestoreInput(
            spec=spec, set_label=set_label, target_time=_target_time(target_time)
        )
        await _operate(VERIFY_RESTORE.name, spec.cluster, inp, detach)

    run_async(go)


@run_app.command("drill")
def run_drill(
    cluster: ClusterOpt,
    scenario: Annotated[Scenario, typer.Option("--scenario", "-s", help="The fault to inject.")],
    rate: Annotated[
        float, typer.Option(help="Probe writes (and reads) per second through the endpoints.")
    ] = 20.0,
    detach: DetachOpt = False,
) -> None:
    """Inject a real fault on a whole cluster (refused otherwise), measure what an
    application saw (write/read unavailability, lost or ghost writes), heal, report."""

    async def go() -> None:
        spec = load_spec(cluster)
        inp = DrillInput(spec=spec, scenario=scenario, rate=rate)
        await _operate(DRILL.name, spec.cluster, inp, detach)

    run_async(go)


@run_app.command("upgrade")
def run_upgrade(
    cluster: ClusterOpt,
    postgres: Annotated[
        str | None,
        typer.Option(
            "--postgres",
            help="PostgreSQL minor version to go to (15.20), or an exact Debian version.",
        ),
    ] = None,
    haproxy: Annotated[
        str | None,
        typer.Option(
            "--haproxy",
            help="HAProxy version for the proxy hosts (2.6.12-1+deb12u4): the proxy without "
            "the VIP first, then the VIP moves and the other follows.",
        ),
    ] = None,
    patroni: Annotated[
        str | None,
        typer.Option(
            "--patroni",
            help="Patroni package version, or the spec's patroni.pypi_version (a release "
            "from PyPI): in maintenance mode (no failover), each member's Patroni upgraded "
            "and restarted while PostgreSQL keeps running.",
        ),
    ] = None,
    etcd: Annotated[
        str | None,
        typer.Option(
            "--etcd",
            help="etcd package version for the etcd members (3.4.23, or 3.4.23-4+b4): "
            "followers first, the etcd leader last, leadership handed off before each "
            "member's package changes.",
        ),
    ] = None,
    pgbackrest: Annotated[
        str | None,
        typer.Option(
            "--pgbackrest",
            help="pgBackRest package version for every host that has it (2.45): all at "
            "once (the repository and its clients must match), the TLS server restarted, "
            "then `pgbackrest check`.",
        ),
    ] = None,
    restart_all: Annotated[
        bool,
        typer.Option(
            "--restart-all",
            help="With --etcd: restart members already on the version too (a rolling restart).",
        ),
    ] = False,
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Allow going to a lower minor version.")
    ] = False,
    rate: Annotated[
        float, typer.Option(help="Probe writes (and reads) per second through the endpoints.")
    ] = 20.0,
    detach: DetachOpt = False,
) -> None:
    """Rolling upgrade. --postgres: replicas one at a time (drained, upgraded, restarted
    through Patroni, healthy again), one switchover, then the old primary; stops at the
    first member that does not come back and waits for `pgha resume`, `rollback` or
    `abort`. --haproxy: the proxy without the VIP first, then the VIP moves to it and the
    other proxy follows. --patroni: in maintenance mode. --etcd: one member at a time,
    the etcd leader last, every member healthy before the next. --pgbackrest: every host
    at once, then archiving checked."""

    if sum(v is not None for v in (postgres, haproxy, patroni, etcd, pgbackrest)) != 1:
        raise typer.BadParameter(
            "give exactly one of --postgres, --haproxy, --patroni, --etcd or --pgbackrest"
        )
    if restart_all and etcd is None:
        raise typer.BadParameter("--restart-all goes with --etcd")

    async def go() -> None:
        spec = load_spec(cluster)
        if pgbackrest is not None:
            inp_b = PgbackrestUpgradeInput(spec=spec, version=pgbackrest,
                                           allow_downgrade=allow_downgrade, rate=rate)  # fmt: skip
            await _operate(PGBACKREST_UPGRADE.name, spec.cluster, inp_b, detach)
            return
        if etcd is not None:
            inp_e = EtcdUpgradeInput(spec=spec, version=etcd, restart_all=restart_all,
                                     allow_downgrade=allow_downgrade, rate=rate)  # fmt: skip
            await _operate(ETCD_UPGRADE.name, spec.cluster, inp_e, detach)
            return
        if patroni is not None:
            inp_p = PatroniUpgradeInput(spec=spec, version=patroni,
                                        allow_downgrade=allow_downgrade, rate=rate)  # fmt: skip
            await _operate(PATRONI_UPGRADE.name, spec.cluster, inp_p, detach)
            return
        if haproxy is not None:
            proxies = ProxyUpgradeInput(spec=spec, packages={"haproxy": haproxy},
                                        allow_downgrade=allow_downgrade, rate=rate)  # fmt: skip
            await _operate(PROXY_UPGRADE.name, spec.cluster, proxies, detach)
            return
        assert postgres is not None
        v = spec.postgres.version
        packages = {f"postgresql-{v}": postgres, f"postgresql-client-{v}": postgres}
        try:
            inp = UpgradeInput(spec=spec, packages=packages, allow_downgrade=allow_downgrade,
                               rate=rate)  # fmt: skip
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
        await _operate(UPGRADE.name, spec.cluster, inp, detach)

    run_async(go)


@run_app.command("reconfigure")
def run_reconfigure(
    cluster: ClusterOpt,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    rate: Annotated[
        float, typer.Option(help="Probe writes (and reads) per second during restarts.")
    ] = 20.0,
    detach: DetachOpt = False,
) -> None:
    """Bring the hosts to the spec: compare (DCS settings, each member's parameters,
    HAProxy/keepalived/pgbouncer/pgBackRest files), reload what changed, write the
    cluster-wide settings, then restart only members with a pending restart (replicas
    first, the primary by switchover; the primary first when a standby minimum is lowered)."""

    async def go() -> None:
        spec = load_spec(cluster)
        inp = ReconfigureInput(spec=spec, dry_run=dry_run, rate=rate)
        await _operate(RECONFIGURE.name, spec.cluster, inp, detach)

    run_async(go)


@run_app.command("switchover")
def run_switchover(
    cluster: ClusterOpt,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Replica to promote (default: the synchronous standby, "
            "else the one with the least lag).",
        ),
    ] = None,
    rate: Annotated[
        float, typer.Option(help="Probe writes (and reads) per second through the endpoints.")
    ] = 20.0,
    detach: DetachOpt = False,
) -> None:
    """Planned switchover through Patroni on a whole cluster, measured by the probe."""

    async def go() -> None:
        spec = load_spec(cluster)
        if to is not None and to not in [h.name for h in spec.hosts_with(Role.postgres)]:
            raise typer.BadParameter(
                f"{to} is not a PostgreSQL host of {spec.cluster}", param_hint="--to"
            )
        await _operate(SWITCHOVER.name, spec.cluster,
                       SwitchoverInput(spec=spec, to=to, rate=rate), detach)  # fmt: skip

    run_async(go)


HostOpt = Annotated[str, typer.Option("--host", help="The database host (as named in the spec).")]


def _host_operation(
    op: Operation, cluster: str, host: str, make: type[NodeInput | EtcdMemberInput], detach: bool
) -> None:
    """Start an operation about one host of the spec, refusing at once what its input's
    ``problem()`` names (a host the spec lacks, a role it does not have)."""

    async def go() -> None:
        spec = load_spec(cluster)
        inp = make(spec=spec, host=host)
        if why := inp.problem():
            raise typer.BadParameter(why, param_hint="--host")
        await _operate(op.name, spec.cluster, inp, detach)

    run_async(go)


@run_app.command("add-node")
def run_add_node(cluster: ClusterOpt, host: HostOpt, detach: DetachOpt = False) -> None:
    """Add a database host the spec lists but the cluster does not have yet: provision the
    spec (packages, certificates, every member's pg_hba, HAProxy), Patroni clones it from
    the leader; done when it streams."""
    _host_operation(ADD_NODE, cluster, host, NodeInput, detach)


@run_app.command("remove-node")
def run_remove_node(cluster: ClusterOpt, host: HostOpt, detach: DetachOpt = False) -> None:
    """Take a database host out of the cluster: a switchover if it leads, drained, the rest
    reconfigured without it, Patroni stopped and disabled there (its data is kept). Then
    remove it from the spec file."""
    _host_operation(REMOVE_NODE, cluster, host, NodeInput, detach)


@run_app.command("etcd-add")
def run_etcd_add(cluster: ClusterOpt, host: HostOpt, detach: DetachOpt = False) -> None:
    """Grow etcd by the host the spec gives role etcd: `member add`, the host started as a
    member of the running cluster, the others' files, Patroni pointed at the new list."""
    _host_operation(ETCD_ADD, cluster, host, EtcdMemberInput, detach)


@run_app.command("etcd-remove")
def run_etcd_remove(cluster: ClusterOpt, host: HostOpt, detach: DetachOpt = False) -> None:
    """Shrink etcd by one member (never below three): Patroni stops using it, leadership
    moves away if it leads, `member remove`, etcd stopped there (data set aside). Then drop
    its etcd role from the spec."""
    _host_operation(ETCD_REMOVE, cluster, host, EtcdMemberInput, detach)


def _decide(cluster: str, action: DecisionAction, note: str) -> None:
    """Send an operator's decision to the upgrade waiting on the cluster."""
    settings = temporal_settings()

    async def go() -> None:
        name = load_spec(cluster).cluster
        client = await connect(settings)
        handle = client.get_workflow_handle(lock_id(name))
        who = os.environ.get("SUDO_USER") or os.environ.get("USER") or ""
        try:
            said = await handle.execute_update(
                "decide", Decision(action=action, by=who, note=note), result_type=str
            )
        except (RPCError, WorkflowUpdateFailedError) as err:
            raise OperationFailed(
                f"cluster {name}: no upgrade is waiting for a decision ({err})"
            ) from None
        console.print(f"{lock_id(name)}: {said}")

    run_async(go)


NoteOpt = Annotated[str, typer.Option(help="Why, for the report.")]


@app.command()
def resume(cluster: ClusterOpt, note: NoteOpt = "") -> None:
    """Tell an upgrade stopped at an unhealthy member that it was fixed: the member is
    checked again and the upgrade goes on when it is healthy."""
    _decide(cluster, DecisionAction.resume, note)


@app.command()
def rollback(cluster: ClusterOpt, note: NoteOpt = "") -> None:
    """Put the member an upgrade stopped at back on its old version, then end the upgrade."""
    _decide(cluster, DecisionAction.rollback, note)


@app.command()
def abort(cluster: ClusterOpt, note: NoteOpt = "") -> None:
    """End an upgrade stopped at an unhealthy member; that member stays drained."""
    _decide(cluster, DecisionAction.abort, note)


@app.command()
def approve(
    cluster: ClusterOpt,
    reject: Annotated[bool, typer.Option("--reject", help="Refuse the drill instead.")] = False,
    note: Annotated[str, typer.Option(help="Why, for the report.")] = "",
) -> None:
    """Approve (or --reject) the drill waiting before its fault on the cluster."""
    settings = temporal_settings()

    async def go() -> None:
        name = load_spec(cluster).cluster
        client = await connect(settings)
        handle = client.get_workflow_handle(lock_id(name))
        who = os.environ.get("SUDO_USER") or os.environ.get("USER") or ""
        try:
            said = await handle.execute_update(
                "approve", Approval(approve=not reject, by=who, note=note), result_type=str
            )
        except (RPCError, WorkflowUpdateFailedError) as err:
            raise OperationFailed(
                f"cluster {name}: no drill is waiting for an approval ({err})"
            ) from None
        console.print(f"{lock_id(name)}: {said}")

    run_async(go)


@app.command()
def status(
    cluster: ClusterOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Read the live cluster: members, etcd, proxies and the VIP, backups. Changes nothing."""
    settings = temporal_settings()

    async def go() -> None:
        spec = load_spec(cluster)
        client = await connect(settings)
        handle = await start_operation(
            client, STATUS, spec.cluster, StatusInput(spec=spec), task_queue=settings.task_queue
        )
        async with in_process_worker_if_needed(client, settings.task_queue):
            result = ClusterStatus.model_validate(await handle.result())
        if as_json:
            print(result.model_dump_json(indent=2))
        else:
            console.print(status_report(result))
        if result.unreadable:
            raise typer.Exit(3)

    run_async(go)


def _operation_of(workflow_id: str) -> str:
    if workflow_id.startswith("pgha-") and ":" in workflow_id:
        name = workflow_id.split(":", 1)[0].removeprefix("pgha-")
        if name in OPERATIONS:
            return name
    return ""


@app.command()
def watch(workflow_id: Annotated[str, typer.Argument(help="Workflow id to follow.")]) -> None:
    """Follow a running (or finished) operation's progress."""
    settings = temporal_settings()

    async def go() -> None:
        client = await connect(settings)
        handle = client.get_workflow_handle(workflow_id)
        try:
            desc = await handle.describe()
        except RPCError:
            raise OperationFailed(f"no workflow {workflow_id} in {settings.target}") from None
        op = _operation_of(workflow_id) or (desc.search_attributes.get("PghaOperation") or [""])[0]
        await _follow_and_report(client, settings, handle, str(op))

    run_async(go)


@app.command()
def cancel(
    workflow_id: Annotated[
        str | None, typer.Argument(help="Workflow id (default: the cluster's lock holder).")
    ] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", "-c")] = None,
) -> None:
    """Ask a running operation to stop (it cleans up and heals before it ends)."""
    if not workflow_id and not cluster:
        raise typer.BadParameter("give a workflow id or --cluster")
    wf_id = workflow_id or lock_id(load_spec(cluster).cluster if cluster else "")

    async def go() -> None:
        client = await connect()
        try:
            await client.get_workflow_handle(wf_id).cancel()
        except RPCError as err:
            raise OperationFailed(f"cannot cancel {wf_id}: {err}") from None
        console.print(f"cancellation requested for {wf_id}")

    run_async(go)


def main() -> None:
    # Temporal's Rust core logs to stderr; keep the CLI quiet unless asked.
    os.environ.setdefault("RUST_LOG", "error")
    code: int = 0
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except PghaError as err:  # errors raised outside _run (e.g. load_spec in cancel)
        print_error(str(err))
        code = 2 if isinstance(err, SpecError) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """Flush output and spans, then leave without interpreter finalization.

    The Temporal SDK's Rust threads can call into Python while the interpreter finalizes
    and abort the process (SIGABRT, "PyGILState_Release ... finalizing": sdk-python issue
    #300), turning a clean exit into a crash. Everything pgha must do is done by now.
    """
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
