"""How the CLI shows things: progress tables and operation reports (rich). No Temporal calls."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from pgha.checks.preflight import PreflightResult, Severity
from pgha.progress import ICONS, Progress, StepState

STATE_STYLE = {
    StepState.pending: "dim",
    StepState.running: "cyan",
    StepState.ok: "green",
    StepState.changed: "yellow",
    StepState.warning: "yellow",
    StepState.failed: "bold red",
    StepState.skipped: "dim",
}
SEVERITY_STYLE = {Severity.ok: "green", Severity.warning: "yellow", Severity.blocking: "bold red"}


def progress_view(progress: Progress | None, workflow_id: str, note: str = "") -> Group:
    if progress is None:
        return Group(Text(f"{workflow_id}: waiting for a worker to start it... {note}", "dim"))
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("step")
    table.add_column("host")
    table.add_column("time", justify="right")
    table.add_column("detail", overflow="fold")
    for s in progress.steps:
        secs = f"{s.seconds:.1f}s" if s.seconds is not None else ""
        table.add_row(
            Text(ICONS[s.state], STATE_STYLE[s.state]),
            s.title,
            s.host or "",
            secs,
            Text(s.detail, STATE_STYLE[s.state] if s.state == StepState.failed else ""),
        )
    head = Text.assemble(
        (f"{progress.operation}", "bold"), f" of {progress.cluster}: ", (progress.phase, "cyan")
    )
    return Group(head, table)


def preflight_report(result: PreflightResult) -> Table:
    table = Table(title=f"preflight of cluster {result.cluster}", show_lines=True)
    for col in ("host", "roles", "os", "cpu", "memory", "disk free", "findings"):
        table.add_column(col, overflow="fold")
    for h in result.hosts:
        f = h.facts
        notes = Text()
        for finding in h.findings:
            if finding.severity == Severity.ok:
                continue
            notes.append(
                f"{finding.severity}: {finding.check}: {finding.message}\n",
                SEVERITY_STYLE[finding.severity],
            )
        if not notes.plain:
            notes.append("all checks passed", "green")
        table.add_row(
            f"{h.host}\n{h.address}",
            ", ".join(r.value for r in h.roles),
            f"{f.os_id} {f.os_version}" if f else "?",
            str(f.cpus) if f else "?",
            f"{f.memory_mb} MB" if f else "?",
            "\n".join(f"{p}: {g:.1f} GB" for p, g in f.disks.items()) if f else "?",
            notes,
        )
    return table
