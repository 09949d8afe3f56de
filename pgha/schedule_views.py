"""How `pgha schedule ...` shows schedules and what a command did (rich). No Temporal calls."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text

from pgha.schedule_models import ScheduleRow, SyncResult, TriggerResult

STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "failed": "bold red",
    "timed_out": "bold red",
    "terminated": "bold red",
    "canceled": "yellow",
}


def _when(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M}"


def _in(t: datetime, now: datetime) -> str:
    """``in 3h 20m`` / ``5m ago``: what an operator reads first."""
    seconds = int((t - now).total_seconds())
    minutes = abs(seconds) // 60
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    span = f"{days}d {hours}h" if days else f"{hours}h {mins}m" if hours else f"{mins}m"
    return f"in {span}" if seconds >= 0 else f"{span} ago"


def sync_report(result: SyncResult, schedules_url: str = "") -> Group:
    """One line per schedule id: what sync did to it (or would do, in a dry run)."""
    verbs = ("would create", "would update", "would delete") if result.dry_run else (
        "created", "updated", "deleted")  # fmt: skip
    table = Table(title=f"schedules of cluster {result.cluster}", title_justify="left")
    table.add_column("schedule")
    table.add_column("sync")
    for sid in result.created:
        table.add_row(sid, Text(verbs[0], "green"))
    for sid in result.updated:
        table.add_row(sid, Text(f"{verbs[1]} ({', '.join(result.changes.get(sid, []))})", "yellow"))
    for sid in result.deleted:
        table.add_row(sid, Text(verbs[2], "red"))
    for sid in result.unchanged:
        table.add_row(sid, Text("unchanged", "dim"))
    changed = len(result.created) + len(result.updated) + len(result.deleted)
    if result.dry_run:
        summary = f"dry run: {changed} change(s) would be made; nothing was changed"
    elif changed:
        summary = f"{changed} change(s) made, {len(result.unchanged)} schedule(s) unchanged"
    else:
        summary = "already in sync: nothing changed"
    if not (result.created or result.updated or result.deleted or result.unchanged):
        summary = "the spec asks for no schedules (backup disabled or every cron null)"
    parts: list[Table | Text] = [table, Text(summary)]
    if schedules_url:
        parts.append(Text(f"Web UI: {schedules_url}", "dim"))
    return Group(*parts)


def schedules_table(rows: list[ScheduleRow], now: datetime) -> Table | Text:
    """Every schedule with its cron, state, next runs and its last run's outcome."""
    if not rows:
        return Text("no pgha schedules; create them with `pgha schedule sync --cluster NAME`")
    table = Table(title="pgha schedules (times in UTC)", title_justify="left")
    for col in ("schedule", "cron", "state", "next run", "last run"):
        table.add_column(col, overflow="fold")
    for r in rows:
        state = Text(f"paused: {r.note}", "yellow") if r.paused else Text("active", "green")
        if r.paused:  # the server still lists times; none starts while paused
            nxt = Text("none (paused)", "dim")
        elif r.next_runs:
            nxt = Text(f"{_when(r.next_runs[0])} ({_in(r.next_runs[0], now)})")
        else:
            nxt = Text("-")
        last = Text("-")
        if r.recent:
            run = r.recent[0]
            status = run.status or "?"
            last = Text.assemble(
                f"{_when(run.started_at)} ({_in(run.started_at, now)}) ",
                (status, STATUS_STYLE.get(status, "")),
                f"\n{run.workflow_id}",
            )
        counts = ((r.skipped_overlap, "still running"), (r.missed_catchup, "too late"))
        skipped = [f"{n} skipped ({why})" for n, why in counts if n]
        if skipped:
            last.append("\n" + ", ".join(skipped), "dim")
        table.add_row(r.id, r.cron or "(changed outside pgha)", state, nxt, last)
    return table


def toggled_report(ids: list[str], paused: bool, note: str | None) -> Text:
    verb = "paused" if paused else "unpaused"
    text = Text(f"{verb} {', '.join(ids)}")
    if note:
        text.append(f" (note: {note})", "dim")
    return text


def trigger_report(result: TriggerResult, cluster: str, workflow_url: str = "") -> Text:
    """What the trigger did: the run it started, or why it started none."""
    if result.workflow_id:
        text = Text.assemble(
            f"{result.schedule_id} started ", (result.workflow_id, "cyan"),
            f"; follow it with `pgha watch {result.workflow_id}`",
        )  # fmt: skip
        if workflow_url:
            text.append(f"\nWeb UI: {workflow_url}", "dim")
        return text
    if result.skipped:
        running = result.running[0] if result.running else "ID"
        return Text(
            f"{result.schedule_id}: skipped, its run {running} is still running (overlap "
            f"policy skip); follow it with `pgha watch {running}`",
            "yellow",
        )
    return Text(
        f"{result.schedule_id}: the server accepted the trigger but no run showed up yet; "
        f"see `pgha schedule list --cluster {cluster}`",
        "yellow",
    )
