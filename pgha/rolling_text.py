"""An upgrade report in words, for the CLI, `pgha report` and the report store. Pure."""

from __future__ import annotations

from pgha.report_text import utc
from pgha.rolling_models import UpgradeReport, server_version_of


def upgrade_headline(report: UpgradeReport) -> str:
    verdict = "DONE" if report.passed else "STOPPED"
    server = server_version_of(report.packages)
    packages = (f"PostgreSQL {server}" if server
                else ", ".join(f"{n} {v}" for n, v in report.packages.items()))  # fmt: skip
    cost = report.cost
    figures = f": writes down {cost.write_down_s:.1f} s" if cost is not None else ""
    return f"{verdict} upgrade of {report.cluster} to {packages}{figures}"


def upgrade_summary(report: UpgradeReport) -> str:
    lines = [
        upgrade_headline(report),
        "",
        f"cluster {report.cluster}, workflow {report.workflow_id}",
        f"ran {utc(report.started_at)} - {utc(report.finished_at)}",
        "packages: " + ", ".join(f"{n} {v}" for n, v in report.packages.items()),
    ]
    if report.reason:
        lines.append(f"reason: {report.reason}")
    lines.append(f"leader {report.old_leader} -> {report.new_leader or '?'}")
    for m in report.members:
        change = (f"{m.version_before} -> {m.version_after}" if m.version_before != m.version_after
                  else m.version_after or m.version_before)  # fmt: skip
        lines.append(f"  {m.member}: {m.result} ({change})" + (f"; {m.detail}" if m.detail else ""))
    running = ", ".join(f"{n} {v or 'not answering'}" for n, v in report.versions_after.items())
    lines.append(f"running at the end: {running}")
    if report.cost is not None:
        c = report.cost
        gaps = ", ".join(f"{length:.1f} s at +{start:.0f} s" for start, length in c.write_gaps)
        lines.append(f"writes: down {c.write_down_s:.2f} s in total ({gaps or 'no gap'}); "
                     f"{c.failed_writes} failed attempts")  # fmt: skip
        lines.append(f"reads: {c.failed_reads} failed, down {c.read_down_s:.2f} s in total")
    if report.verdict is not None:
        v = report.verdict
        lines.append(f"acknowledged writes: {v.acknowledged}, lost {len(v.lost)}, "
                     f"ghost {len(v.ghosts)}, duplicated {len(v.duplicates)}")  # fmt: skip
    for d in report.decisions:
        lines.append(
            f"operator: {d.action.value} by {d.by or '?'}" + (f" ({d.note})" if d.note else "")
        )
    return "\n".join(lines) + "\n"
