"""The drill's timeline picture: a real matplotlib rendering of a realistic drill, and the
events placed on the probe's clock."""

from __future__ import annotations

import struct
from datetime import timedelta

import pytest

from pgha.drill_models import ProbeSeries
from pgha.render.drill_timeline import _outage, marks, timeline_png
from tests.unit.drill_samples import PROBE_START, T0, drill_report, event

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which always comes first."""
    assert png[:8] == PNG_SIGNATURE and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_timeline_png_of_realistic_drill_is_a_1200x600_png() -> None:
    report = drill_report()
    assert report.series is not None and len(report.series.buckets) == 240
    png = timeline_png(report)
    assert png is not None
    assert png_size(png) == (1200, 600)
    assert 20_000 < len(png) < 500_000  # drawn, not blank; small enough to keep


def test_timeline_png_failed_drill_without_when_or_patroni_times_draws() -> None:
    report = drill_report(
        passed=False,
        reason="writes went wrong: 61 lost, 0 ghost, 0 duplicated " * 4,  # long: cut in title
        events=[event("fault", 19.0, with_when=False), event("not healed", 80.0)],
        patroni_times=None,
    )
    png = timeline_png(report)
    assert png is not None and png_size(png) == (1200, 600)


def test_timeline_png_is_deterministic() -> None:
    assert timeline_png(drill_report()) == timeline_png(drill_report())


def test_timeline_png_without_series_is_none() -> None:
    assert timeline_png(drill_report(series=None)) is None
    empty = ProbeSeries(started_at=PROBE_START, bucket_s=0.25)
    assert timeline_png(drill_report(series=empty)) is None


def test_marks_are_on_the_probe_clock_with_at_as_fallback() -> None:
    report = drill_report(
        events=[
            event("approved", 1.0),  # before the probe started: left out
            event("fault", 19.0),
            # An old report: no `when`, `at` counts from the workflow start (T0).
            event("leader running", 37.2, with_when=False),
            event("healed", 300.0),  # after the probe ended: left out
        ]
    )
    assert report.series is not None
    found = [(m.label, m.x) for m in marks(report, report.series)]
    assert found == [
        ("fault", pytest.approx(15.0)),
        ("patroni: leader gone", pytest.approx(29.5)),  # fault + detected_s
        ("patroni: promoted", pytest.approx(32.8)),  # fault + history_switch_s
        ("leader running", pytest.approx(33.2)),
    ]


def test_marks_use_when_even_if_at_disagrees() -> None:
    ev = event("fault", 19.0).model_copy(update={"when": T0 + timedelta(seconds=10)})
    report = drill_report(events=[ev], patroni_times=None)
    assert report.series is not None
    assert [m.x for m in marks(report, report.series)] == [pytest.approx(6.0)]


def test_the_shaded_outage_is_the_verdicts_when_it_knows_where_it_began() -> None:
    report = drill_report()
    assert report.verdict is not None and report.series is not None
    exact = report.model_copy(update={"verdict": report.verdict.model_copy(
        update={"write_gap_from_s": 3.3, "write_gap_s": 35.6})})  # fmt: skip
    assert _outage(exact, report.series) == (3.3, pytest.approx(38.9))
    older = report.model_copy(update={"verdict": report.verdict.model_copy(
        update={"write_gap_from_s": None})})  # fmt: skip
    assert _outage(older, report.series) is not None  # from the buckets, as before
