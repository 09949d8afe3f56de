"""How the CLI shows things: progress tables and operation reports (rich). No Temporal calls."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text

from pgha.checks.preflight import PreflightResult, Severity
from pgha.progress import ICONS, Progress, StepState
from pgha.provision_models import ProvisionResult
from pgha.status_models import ClusterStatus

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


def preflight_report(result: PreflightResult) -> Group:
    """A row per host, then each warning or blocking finding once, with the hosts it hit."""
    table = Table(title=f"preflight of cluster {result.cluster}", title_justify="left")
    for col in ("host", "address", "roles", "os", "cpu", "memory", "disk free", "verdict"):
        table.add_column(col, overflow="fold")
    grouped: dict[tuple[Severity, str, str], list[str]] = {}
    for h in result.hosts:
        f = h.facts
        warnings = [x for x in h.findings if x.severity == Severity.warning]
        for x in h.findings:
            if x.severity != Severity.ok:
                grouped.setdefault((x.severity, x.check, x.message), []).append(h.host)
        if h.blocking:
            verdict = Text(f"{len(h.blocking)} blocking", SEVERITY_STYLE[Severity.blocking])
        elif warnings:
            verdict = Text(f"ready, {len(warnings)} warning(s)", SEVERITY_STYLE[Severity.warning])
        else:
            verdict = Text("ready", SEVERITY_STYLE[Severity.ok])
        table.add_row(
            h.host,
            h.address,
            ", ".join(r.value for r in h.roles),
            f"{f.os_id} {f.os_version}" if f else "?",
            str(f.cpus) if f else "?",
            f"{f.memory_mb / 1024:.1f} GiB" if f else "?",
            "\n".join(f"{p} {g:.0f} GiB" for p, g in f.disks.items()) if f else "?",
            verdict,
        )
    notes = []
    order = {Severity.blocking: 0, Severity.warning: 1}
    for (severity, check, message), hosts in sorted(
        grouped.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])
    ):
        who = "all hosts" if len(hosts) == len(result.hosts) > 1 else ", ".join(hosts)
        notes.append(
            Text.assemble(
                (f"{severity} ", SEVERITY_STYLE[severity]), f"{check} on {who}: ", message
            )
        )
    return Group(table, *notes)


def provision_report(result: ProvisionResult) -> Group:
    """Where everything is, and where applications connect."""
    table = Table(title=f"cluster {result.cluster}", title_justify="left")
    for col in ("component", "host", "address", "port"):
        table.add_column(col)
    for e in result.endpoints:
        table.add_row(e.component, e.host, e.address, str(e.port))
    lines = [
        Text.assemble(("read-write: ", "bold"), result.read_write),
        Text.assemble(("read-only:  ", "bold"), result.read_only),
    ]
    if result.pooled:
        lines.append(Text.assemble(("pooled:     ", "bold"), result.pooled))
    lines.append(Text(f"verified: {result.verified}", "green"))
    lines += [Text(f"warning: {w}", SEVERITY_STYLE[Severity.warning]) for w in result.warnings]
    lines.append(
        Text(f"{result.changed} of {result.steps} steps changed something; leader {result.leader}")
    )
    return Group(table, *lines)


def _lag(lag: int | None) -> str:
    return "?" if lag is None else f"{lag} B"


def status_report(st: ClusterStatus) -> Group:
    """Members, etcd, proxies, backups; then every part that did not answer."""
    parts: list[Table | Text] = []
    if st.patroni:
        t = Table(title=f"cluster {st.cluster}: members (from {st.patroni.source})",
                  title_justify="left")  # fmt: skip
        for col in ("member", "host", "role", "state", "timeline", "lag"):
            t.add_column(col)
        for m in st.patroni.members:
            healthy = m.state in ("running", "streaming")
            t.add_row(m.name, m.host, m.role, Text(m.state, "green" if healthy else "bold red"),
                      str(m.timeline or ""), _lag(m.lag_bytes))  # fmt: skip
        parts.append(t)
    if st.etcd:
        t = Table(title="etcd", title_justify="left")
        for col in ("endpoint", "health", "leader", "version"):
            t.add_column(col)
        for e in st.etcd.members:
            t.add_row(e.endpoint, Text("healthy", "green") if e.healthy else
                      Text("unhealthy", "bold red"), "leader" if e.leader else "",
                      e.version)  # fmt: skip
        parts.append(t)
    for p in st.proxies:
        t = Table(title=f"proxy {p.host}: haproxy {p.haproxy}, keepalived {p.keepalived}"
                  + (", holds the VIP" if p.holds_vip else ""), title_justify="left")  # fmt: skip
        for col in ("listener", "server", "status"):
            t.add_column(col)
        for b in p.backends:
            t.add_row(b.listener, b.server, Text(b.status, "green" if b.status == "UP" else ""))
        parts.append(t)
    if st.backups:
        last = st.backups.backups[-1] if st.backups.backups else None
        if last:
            when = datetime.fromtimestamp(last.stopped, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            parts.append(Text(
                f"backups ({st.backups.stanza}, {st.backups.status}): {len(st.backups.backups)} "
                f"set(s); last {last.label} ({last.type}) finished {when}, "
                f"{last.repo_size_bytes / 2**20:.1f} MiB in the repository"
            ))  # fmt: skip
        else:
            parts.append(Text(f"backups ({st.backups.stanza}): none yet ({st.backups.status})"))
    for u in st.unreadable:
        parts.append(Text(f"could not read {u.part} from {u.host}: {u.error}", "bold red"))
    return Group(*parts)
