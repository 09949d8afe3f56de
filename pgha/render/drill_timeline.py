"""The drill's timeline picture: the probe's writes and reads over time with the drill's
events marked, as PNG bytes. Pure: no files (the report store writes them), no clock.

matplotlib through ``Figure`` and ``FigureCanvasAgg``, never pyplot: pyplot keeps global
figures and picks a GUI backend, neither of which a worker thread or a CLI wants. Not
re-exported from pgha.render: workflows import that package, and matplotlib is heavy.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from pgha.checks.probe_series import longest_write_outage
from pgha.drill_models import DrillReport, ProbeSeries

#: 1200x600 px: wide enough for a ten-minute drill, small enough for a chat or a ticket.
SIZE_IN = (12.0, 6.0)
DPI = 100
OK, FAILED, UNKNOWN = "#2ca02c", "#d62728", "#ff7f0e"
OUTAGE = "#d62728"
#: Line colours of the drill's events; others are grey.
EVENT_COLOUR = {
    "fault": "#000000",
    "leader running": "#1f4e9c",
    "vip moved": "#1f4e9c",
    "healed": "#1b7a1b",
    "not healed": "#d62728",
}
PATRONI_COLOUR = "#7a3fa0"
#: Labels closer than this share of the time axis go on different rows, so they stay legible.
LABEL_CLEARANCE = 0.12
LABEL_ROWS = 4


@dataclass(frozen=True)
class Mark:
    """A vertical line on the timeline: seconds since the probe started, label, style."""

    x: float
    label: str
    colour: str
    style: str = "--"


def _outage(report: DrillReport, series: ProbeSeries) -> tuple[float, float] | None:
    """The window to shade: the verdict's exact longest write gap (first failed attempt's
    send time to the next success), else the bucket-coarse one from the series."""
    v = report.verdict
    if v is not None and v.write_gap_from_s is not None and v.write_gap_s > 0:
        return v.write_gap_from_s, v.write_gap_from_s + v.write_gap_s
    return longest_write_outage(series)


def marks(report: DrillReport, series: ProbeSeries) -> list[Mark]:
    """The report's events (and Patroni's times, when known) on the probe's clock, in
    time order. Events outside the probe's run (an approval before it) are left out: the
    picture is about what the application saw.
    """
    # Old reports have no ``when``: ``at`` counts from the workflow's start, which is the
    # report's started_at.
    offset = (report.started_at - series.started_at).total_seconds()
    found: list[Mark] = []
    for e in report.events:
        x = (e.when - series.started_at).total_seconds() if e.when else e.at + offset
        found.append(
            Mark(x, e.name, EVENT_COLOUR.get(e.name, "#666666"), "-" if e.name == "fault" else "--")
        )
    pt = report.patroni_times
    if pt is not None:
        fault = (pt.fault_at - series.started_at).total_seconds()
        for seconds, label in (
            (pt.detected_s, "patroni: leader gone"),
            (pt.history_switch_s, "patroni: promoted"),
        ):
            if seconds is not None:
                found.append(Mark(fault + seconds, label, PATRONI_COLOUR, ":"))
    end = series.buckets[-1].at + series.bucket_s if series.buckets else 0.0
    return sorted((m for m in found if 0 <= m.x <= end), key=lambda m: m.x)


def _title(report: DrillReport) -> str:
    verdict = "passed" if report.passed else "FAILED"
    line = f"{report.cluster}: {report.scenario.value} drill {verdict}"
    v = report.verdict
    if v is not None:
        line += f"  |  writes down {v.write_gap_s:.1f} s, {len(v.lost)} acknowledged lost"
    if report.old_leader or report.new_leader:
        line += f"  |  leader {report.old_leader or '?'} -> {report.new_leader or '?'}"
    if report.reason:
        reason = report.reason if len(report.reason) <= 110 else report.reason[:107] + "..."
        line += f"\n{reason}"
    return line


def _stacked(ax: Axes, edges: Sequence[float], layers: Sequence[tuple[list[int], str]]) -> None:
    """Stacked bars per bucket, drawn as filled steps: one patch per layer rather than one
    per bucket, so a drill of minutes (thousands of buckets) draws fast."""
    base = [0] * (len(edges) - 1)
    for values, colour in layers:
        top = [b + v for b, v in zip(base, values, strict=True)]
        ax.stairs(top, edges, baseline=base, fill=True, color=colour, lw=0)
        base = top


def _draw_marks(top: Axes, bottom: Axes, found: list[Mark]) -> None:
    lo, hi = top.get_xlim()
    span = max(hi - lo, 1e-9)
    last_x: list[float | None] = [None] * LABEL_ROWS
    for i, m in enumerate(found):
        for ax in (top, bottom):
            ax.axvline(m.x, color=m.colour, ls=m.style, lw=1.4)
        # The first row whose last label is far enough to the left; else rows in turn.
        row = next(
            (r for r, x in enumerate(last_x) if x is None or m.x - x > span * LABEL_CLEARANCE),
            i % LABEL_ROWS,
        )
        last_x[row] = m.x
        # Near the right edge the label goes left of its line, or it would leave the axes.
        near_end = m.x > hi - span * LABEL_CLEARANCE
        top.text(
            m.x,
            0.97 - 0.1 * row,
            f" {m.label} ",
            transform=top.get_xaxis_transform(),
            va="top",
            ha="right" if near_end else "left",
            fontsize=9,
            color=m.colour,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
        )


def timeline_png(report: DrillReport) -> bytes | None:
    """The drill's timeline as a 1200x600 PNG: writes per bucket (acknowledged, failed,
    unknown) above, reads below, the longest write outage shaded, the events marked.
    Deterministic for one report and matplotlib version.

    :returns: the PNG, or None when the report has no series (or an empty one) to draw.
    """
    series = report.series
    if series is None or not series.buckets:
        return None
    b = series.buckets
    edges = [x.at for x in b] + [round(b[-1].at + series.bucket_s, 3)]
    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself: Agg, whatever the environment asks for
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    writes = [x.writes_ok for x in b], [x.writes_failed for x in b], [x.writes_unknown for x in b]
    _stacked(top, edges, list(zip(writes, (OK, FAILED, UNKNOWN), strict=True)))
    _stacked(bottom, edges, [([x.reads_ok for x in b], OK), ([x.reads_failed for x in b], FAILED)])
    most = max(x.writes_ok + x.writes_failed + x.writes_unknown for x in b)
    # Headroom above the bars for the event labels.
    top.set_ylim(0, max(most, 1) * 1.75)
    bottom.set_ylim(0, max(max(x.reads_ok + x.reads_failed for x in b), 1) * 1.15)
    top.set_xlim(min(edges[0], 0.0), edges[-1])  # from the probe's start, where marks may be
    handles = [
        Patch(color=OK, label="acknowledged / ok"),
        Patch(color=FAILED, label="failed"),
        Patch(color=UNKNOWN, label="outcome unknown"),
    ]
    outage = _outage(report, series)
    if outage is not None:
        for ax in (top, bottom):
            ax.axvspan(*outage, color=OUTAGE, alpha=0.1, lw=0, zorder=0)  # behind the bars
        handles.append(Patch(color=OUTAGE, alpha=0.15, label="longest write outage"))
    _draw_marks(top, bottom, marks(report, series))
    unit = f"{series.bucket_s:g} s"
    top.set_ylabel(f"writes per {unit}")
    bottom.set_ylabel(f"reads per {unit}")
    started = series.started_at.astimezone(UTC)
    bottom.set_xlabel(f"seconds since the probe started ({started:%Y-%m-%d %H:%M:%S} UTC)")
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.suptitle(_title(report), color="black" if report.passed else "#b00000", fontsize=12)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()
