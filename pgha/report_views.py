"""How the CLI shows reports and backup sets (rich). No Temporal calls, no file reads; the
wording of summaries is pgha.report_text's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from pgha.backup_models import BackupRecord, BackupSets, BackupsOverview
from pgha.report_text import human_age, human_bytes, human_seconds, verification_concern
from pgha.reports import StoredReport


def _when(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M}"


def _verdict(passed: bool | None) -> Text:
    if passed is None:
        return Text("-", "dim")
    return Text("PASSED", "green") if passed else Text("FAILED", "bold red")


def report_list(reports: list[StoredReport], title: str) -> Table:
    """Recent reports, newest first: id, kind, when, verdict, headline."""
    table = Table(title=title, title_justify="left")
    for col in ("id", "kind", "created (UTC)", "passed"):
        table.add_column(col, no_wrap=True)
    table.add_column("headline", overflow="fold")
    for r in reports:
        table.add_row(r.id, r.kind.value, _when(r.created_at), _verdict(r.passed), r.headline)
    return table


def report_view(report: StoredReport, summary: str) -> Group:
    """The stored summary, its verdict line coloured; then where the report lives."""
    first, _, rest = summary.partition("\n")
    style = {True: "bold green", False: "bold red", None: "bold"}[report.passed]
    # Text, not markup: a reason may hold brackets that rich would take for style tags.
    return Group(
        Text(first, style),
        Text(rest.rstrip("\n")),
        Text(f"report {report.id}: {report.path}", "dim"),
    )


def _sets_table(cluster: str, sets: BackupSets) -> Table:
    wal = f"; archived WAL {sets.wal_min} - {sets.wal_max}" if sets.wal_min else ""
    table = Table(
        title=f"backup sets of {cluster} (stanza {sets.stanza}, {sets.status}{wal})",
        title_justify="left",
        # No rules or edge padding: labels and WAL names are long, terminals are not.
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    # Only the label folds (a full set's label is 16 characters; diff and incr labels fold
    # after it): the other columns are short or names that must stay whole.
    table.add_column("label", overflow="fold", min_width=16)
    table.add_column("type", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("duration", no_wrap=True)
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("repo size", no_wrap=True, justify="right")
    table.add_column("WAL start / stop", no_wrap=True)
    table.add_column("prior", no_wrap=True)
    for s in sets.sets:
        table.add_row(*_set_row(s))
    return table


def _set_row(s: BackupRecord) -> tuple[str, ...]:
    return (
        s.label,
        s.type.value,
        _when(s.started),
        human_seconds(s.duration_s).replace(" min ", "m ").replace(" h ", "h "),
        human_bytes(s.size_bytes),
        human_bytes(s.repo_size_bytes),
        # Two lines: side by side, two WAL names take half a terminal.
        f"{s.wal_start}\n{s.wal_stop}" if s.wal_start or s.wal_stop else "",
        s.prior or "",
    )


def _verification_line(overview: BackupsOverview, now: datetime) -> Text:
    last = overview.last_verification
    concern = verification_concern(last, overview.verification_max_age_hours, now)
    if last is None:
        return Text(f"last restore verification: none ({concern})", "yellow")
    set_label = last.backup.label if last.backup else "no set"
    line = Text.assemble(
        "last restore verification: ",
        _verdict(last.passed),
        f" {human_age(now - last.finished_at)} ago ({_when(last.finished_at)} UTC), "
        f"set {set_label}, on {last.target_host}",
    )
    if not last.passed:
        line.append(f"\n  reason: {last.reason or '(none given)'}", "bold red")
    elif concern:
        line.append(f"\n  {concern}", "yellow")
    return line


def backups_report(overview: BackupsOverview, now: datetime) -> Group:
    """The sets (or why they could not be read) and the last verification, flagged when it
    failed or is older than the spec's backup.verify.max_age_hours."""
    parts: list[Table | Text] = []
    if overview.sets is not None:
        if overview.sets.sets:
            parts.append(_sets_table(overview.cluster, overview.sets))
        else:
            parts.append(
                Text(f"backups of {overview.cluster}: no sets yet ({overview.sets.status})")
            )
    if overview.unreadable:
        parts.append(Text(f"could not read the backup sets: {overview.unreadable}", "bold red"))
    parts.append(_verification_line(overview, now))
    return Group(*parts)
