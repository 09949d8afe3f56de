"""A drill report in words, for `pgha report` and the report store. Pure."""

from __future__ import annotations

from pgha.drill_models import DrillReport, PatroniTimes, Verdict
from pgha.report_text import utc


def drill_headline(report: DrillReport) -> str:
    verdict = "PASSED" if report.passed else "FAILED"
    v = report.verdict
    figures = (
        f": writes down {v.write_gap_s:.1f} s, {len(v.lost)} acknowledged lost"
        if v is not None
        else ""
    )
    return f"{verdict} drill {report.scenario.value} of {report.cluster}{figures}"


def _verdict_lines(v: Verdict) -> list[str]:
    return [
        f"writes: {v.acknowledged} acknowledged; unavailable {v.write_gap_s:.2f} s "
        f"(first failure to next success); slowest commit {v.max_commit_s:.2f} s",
        f"reads: unavailable {v.read_gap_s:.2f} s",
        f"lost acknowledged writes (RPO): {len(v.lost)} rows over {v.lost_span_s:.2f} s"
        + (f" {v.lost[:10]}" if v.lost else ""),
        f"ghost writes (failed yet present): {len(v.ghosts)}"
        + (f" {v.ghosts[:10]}" if v.ghosts else ""),
        f"unknown outcome: {len(v.recovered)} present, {len(v.unknown_absent)} absent; "
        f"duplicates: {len(v.duplicates)}",
    ]


def patroni_times_line(t: PatroniTimes) -> str:
    """What Patroni did after the fault, in seconds from it; the parts it did not show are
    left out (a drill that moves no leader has no promotion)."""
    parts: list[str] = []
    if t.detected_s is not None:
        parts.append(f"detected after {t.detected_s:.1f} s")
    if t.promoted_s is not None:
        parts.append(f"new leader running after {t.promoted_s:.1f} s")
    if t.history_switch_s is not None:
        reason = f" ({t.history_reason})" if t.history_reason else ""
        parts.append(f"history switch at {t.history_switch_s:.1f} s{reason}")
    return "patroni after the fault: " + (", ".join(parts) or "no reaction seen")


def drill_summary(report: DrillReport) -> str:
    lines = [
        drill_headline(report),
        "",
        f"cluster {report.cluster}, workflow {report.workflow_id}",
        f"ran {utc(report.started_at)} - {utc(report.finished_at)}",
    ]
    if report.reason:
        lines.append(f"reason: {report.reason}")
    lines.append(
        f"leader {report.old_leader or '?'} -> {report.new_leader or '?'}, timeline "
        f"{report.timeline_before} -> {report.timeline_after}"
        + (f"; etcd leader before the fault: {report.etcd_leader}" if report.etcd_leader else "")
    )
    lines.append("patroni: " + ", ".join(f"{k} {v}" for k, v in report.patroni.items()))
    if report.patroni_times is not None:
        lines.append(patroni_times_line(report.patroni_times))
    if report.verdict is not None:
        lines += _verdict_lines(report.verdict)
    lines += _healing_lines(report.healed, report.healing)
    if report.reinitialised:
        lines.append(
            "reinitialised from the leader (their data had diverged): "
            + ", ".join(report.reinitialised)
        )
    lines.append("timeline of the drill (seconds from the start):")
    lines += [f"  {e.at:7.2f}  {e.name}  {e.detail}" for e in report.events]
    return "\n".join(lines) + "\n"


def _healing_lines(healed: bool, steps: list[str]) -> list[str]:
    """One line when healing took one step; else the outcome and then each step in order,
    so a step that did not heal (and the one after it that did) read as a sequence."""
    outcome = "yes" if healed else "NO"
    if len(steps) <= 1:
        return [f"healed: {outcome}" + (f" ({steps[0]})" if steps else "")]
    return [f"healed: {outcome}, in {len(steps)} steps:", *(f"  - {step}" for step in steps)]
