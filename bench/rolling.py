"""Benchmark: the write downtime of a rolling minor upgrade against that of one switchover
on the same cluster, as a ratio (the goal is 1.0: the upgrade's replicas restart without
the writers noticing, and its one switchover is the only gap). Writes
bench/results/rolling.json.

Each round runs a switchover drill, then a rolling upgrade to the other of two versions
(down to --low with --allow-downgrade, then back up to --high), so the lab ends on --high
as provisioned. The lab must be up and provisioned, with drill.require_approval false.

Run: .venv/bin/python -m bench.rolling [--rounds N] [--low 15.18] [--high 15.20]
                                       [--rate N] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError

from bench.restore import BenchError, git_commit, start_when_free
from pgha.drill_models import DrillInput, DrillReport, Scenario
from pgha.operations import DRILL, UPGRADE
from pgha.rolling_models import UpgradeInput, UpgradeReport
from pgha.settings import temporal_settings
from pgha.spec import ClusterSpec, load_spec
from pgha.temporal import connect
from pgha.worker import in_process_worker

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
#: Between two operations: HAProxy's checks of a restarted member settle.
PAUSE_S = 5


@dataclass(frozen=True)
class Sample:
    kind: str  # "switchover" or "upgrade"
    round: int
    #: Write downtime: the switchover drill's gap, the upgrade's sum of gaps.
    write_down_s: float
    failed_reads: int
    lost: int
    wall_s: float
    detail: str
    workflow_run_id: str


async def switchover(client: Client, tq: str, spec: ClusterSpec, round_: int,
                     rate: float) -> Sample:  # fmt: skip
    started = time.monotonic()
    handle = await start_when_free(client, DRILL, spec.cluster,
                                   DrillInput(spec=spec, scenario=Scenario.switchover, rate=rate),
                                   tq)  # fmt: skip
    try:
        report = DrillReport.model_validate(await handle.result())
    except WorkflowFailureError as err:
        raise BenchError(f"the switchover drill failed: {err.cause or err}") from None
    v = report.verdict
    assert v is not None
    buckets = report.series.buckets if report.series else []
    moved = f"{report.old_leader} -> {report.new_leader}"
    return Sample("switchover", round_, v.write_gap_s, sum(b.reads_failed for b in buckets),
                  len(v.lost), round(time.monotonic() - started, 1), moved,
                  handle.result_run_id or "")  # fmt: skip


async def upgrade(client: Client, tq: str, spec: ClusterSpec, round_: int, version: str,
                  downgrade: bool, rate: float) -> Sample:  # fmt: skip
    v = spec.postgres.version
    inp = UpgradeInput(spec=spec, packages={f"postgresql-{v}": version,
                                            f"postgresql-client-{v}": version},
                       allow_downgrade=downgrade, rate=rate)  # fmt: skip
    started = time.monotonic()
    handle = await start_when_free(client, UPGRADE, spec.cluster, inp, tq)
    try:
        report = UpgradeReport.model_validate(await handle.result())
    except WorkflowFailureError as err:
        raise BenchError(f"the upgrade to {version} stopped: {err.cause or err}") from None
    if report.cost is None:
        raise BenchError(f"the cluster already ran {version}: nothing was measured")
    lost = len(report.verdict.lost) if report.verdict else 0
    return Sample("upgrade", round_, report.cost.write_down_s, report.cost.failed_reads, lost,
                  round(time.monotonic() - started, 1),
                  f"to {version}, {report.old_leader} -> {report.new_leader}",
                  handle.result_run_id or "")  # fmt: skip


def summary(samples: list[Sample]) -> dict[str, Any]:
    """Median and worst per kind, and the ratio of the medians (upgrade / switchover)."""
    out: dict[str, Any] = {}
    for kind in ("switchover", "upgrade"):
        downs = [s.write_down_s for s in samples if s.kind == kind]
        if downs:
            out[kind] = {"runs": len(downs), "median_s": round(statistics.median(downs), 2),
                         "worst_s": round(max(downs), 2),
                         "lost": sum(s.lost for s in samples if s.kind == kind)}  # fmt: skip
    if "switchover" in out and "upgrade" in out and out["switchover"]["median_s"] > 0:
        out["ratio"] = round(out["upgrade"]["median_s"] / out["switchover"]["median_s"], 2)
    return out


def table(s: dict[str, Any]) -> str:
    lines = ["| operation | runs | write downtime median / worst | lost |", "|---|---|---|---|"]
    for kind in ("switchover", "upgrade"):
        if kind in s:
            k = s[kind]
            lines.append(f"| {kind} | {k['runs']} | {k['median_s']:.1f} / {k['worst_s']:.1f} s "
                         f"| {k['lost']} |")  # fmt: skip
    if "ratio" in s:
        lines.append(f"\nratio upgrade / switchover (medians): {s['ratio']:.2f} (goal 1.0)")
    return "\n".join(lines)


async def main(rounds: int, low: str, high: str, rate: float, out: Path) -> None:
    spec = load_spec("lab", ROOT / "clusters")
    if spec.drill.require_approval:
        raise BenchError("clusters/lab.yaml asks for an approval before each drill; the bench "
                         "needs drill.require_approval false")  # fmt: skip
    client = await connect(temporal_settings())
    tq = f"bench-rolling-{int(time.time())}"
    samples: list[Sample] = []
    started, stopped = time.monotonic(), ""
    try:
        async with in_process_worker(client, tq):
            for r in range(1, rounds + 1):
                for step in ("switchover", "down", "up"):
                    print(f"round {r}: {step}", flush=True)
                    if step == "switchover":
                        s = await switchover(client, tq, spec, r, rate)
                    else:
                        s = await upgrade(client, tq, spec, r, low if step == "down" else high,
                                          step == "down", rate)  # fmt: skip
                    samples.append(s)
                    print(f"   writes down {s.write_down_s:.2f} s, {s.failed_reads} failed "
                          f"reads, {s.lost} lost, {s.wall_s:.0f} s ({s.detail})")  # fmt: skip
                    await asyncio.sleep(PAUSE_S)
    except BaseException as err:
        stopped = str(err) or type(err).__name__
        raise
    finally:
        if samples:
            figures = summary(samples)
            data = {"bench": "rolling", "at": datetime.now(UTC).isoformat(),
                    "commit": git_commit(), "cluster": spec.cluster, "low": low, "high": high,
                    "rate": rate, "complete": not stopped, "stopped": stopped,
                    "seconds": round(time.monotonic() - started), "summary": figures,
                    "samples": [asdict(x) for x in samples]}  # fmt: skip
            target = out.with_suffix(".partial.json") if stopped else out
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(data, indent=2) + "\n")
            print()
            print(table(figures))
            print(f"written: {target}")


def cli() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    parser.add_argument("--low", default="15.18", help="the lower version (default 15.18)")
    parser.add_argument("--high", default="15.20", help="the higher version (default 15.20)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="probe writes (and reads) per second (default 20)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS / "rolling.json",
                        help="JSON path (default bench/results/rolling.json)")  # fmt: skip
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        asyncio.run(main(args.rounds, args.low, args.high, args.rate, args.out))
    except BenchError as err:
        print(f"bench stopped: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    cli()
