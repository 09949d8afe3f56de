"""A reconfigure plan and report in words, for the CLI. Pure."""

from __future__ import annotations

from pgha.reconfigure_models import ReconfigurePlan, ReconfigureReport


def plan_lines(plan: ReconfigurePlan) -> list[str]:
    if plan.empty:
        return ["nothing differs from the spec"]
    lines = []
    if plan.changes:
        lines.append("settings:")
        for c in plan.changes:
            where = "cluster-wide (DCS)" if c.scope == "dcs" else c.scope
            restart = "  [restart]" if c.restart else ""
            lines.append(f"  {where}: {c.key}: {c.old if c.old is not None else '(unset)'} -> "
                         f"{c.new if c.new is not None else '(unset)'}{restart}")  # fmt: skip
    if plan.files:
        lines.append("files:")
        lines += [f"  {f.host}: {f.path} ({f.service} {f.apply})" for f in plan.files]
    if any(c.restart for c in plan.changes):
        how = (f"the primary first, in place ({', '.join(plan.lowered)} lowered; standbys must "
               "keep them at least as high)" if plan.lowered
               else "replicas first, then the primary by switchover")  # fmt: skip
        lines.append(f"restarts: the members Patroni then marks pending restart, {how}")
    return lines


def reconfigure_headline(report: ReconfigureReport) -> str:
    head = "DRY RUN" if report.dry_run else ("DONE" if report.passed else "STOPPED")
    restarts = f", restarted {', '.join(report.restarted)}" if report.restarted else ""
    down = (f": writes down {report.write_down_s:.1f} s" if report.write_down_s is not None
            else "")  # fmt: skip
    changes = (
        "nothing differs"
        if report.plan.empty
        else (f"{len(report.plan.changes)} setting(s), {len(report.plan.files)} file(s)")
    )
    return f"{head} reconfigure of {report.cluster}: {changes}{restarts}{down}"


def reconfigure_summary(report: ReconfigureReport) -> str:
    head = "DRY RUN" if report.dry_run else ("DONE" if report.passed else "STOPPED")
    lines = [f"{head} reconfigure of {report.cluster}"]
    if report.reason:
        lines.append(f"reason: {report.reason}")
    lines += plan_lines(report.plan)
    if report.dry_run:
        lines.append("nothing was changed (--dry-run)")
        return "\n".join(lines) + "\n"
    lines.append(f"restarted: {', '.join(report.restarted) or 'none'}"
                 + (f"; switchover {report.switchover}" if report.switchover else ""))  # fmt: skip
    if report.write_down_s is not None:
        lines.append(f"writes: down {report.write_down_s:.2f} s in total; failed reads: "
                     f"{report.failed_reads}; acknowledged writes lost: {report.lost}")  # fmt: skip
    return "\n".join(lines) + "\n"
