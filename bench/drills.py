"""Benchmark: pgha's failover drills on the lab, each scenario several times, with the median
and worst write and read unavailability (RTO) and lost acknowledged writes (RPO) per
scenario, next to the floor that Patroni's timers allow (pgha/checks/failover_floor.py) and
the issue's targets. Writes bench/results/drills.json (drills-fast.json with --preset fast).

The lab must be up and provisioned, with drill.require_approval false (the lab spec's
default). Rounds are round-robin: every round runs each scenario once. A failed drill is
a data point (passed false, with its reason); a refused one (the cluster is not whole)
is retried once after the cluster had up to 2 minutes to become whole, then the bench
stops, writing what it has.

--preset fast sets Patroni's DCS timers to the fast-failover preset (ttl 7, loop_wait 1,
retry_timeout 3; docs/failover-tuning.md) with `patronictl edit-config` for the run, and
puts the old values back afterwards, also on Ctrl-C.

Run: .venv/bin/python -m bench.drills [--scenarios a,b] [--rounds N] [--rate N]
                                      [--preset default|fast] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError

from bench.bare_restore import ExecFailed, run_in
from bench.drill_stats import DrillRun, Preset, describe, schedule, summarise, table
from bench.restore import BenchError, git_commit, start_when_free
from pgha.checks.failover_floor import (
    FAST_FAILOVER,
    TIMERS,
    effective_timers,
    obeys_rule,
    parse_patroni_version,
    with_timers,
)
from pgha.drill_models import DrillInput, DrillReport, Scenario
from pgha.lab.hosts import lab_status
from pgha.operations import DRILL
from pgha.render.haproxy import haproxy_cfg
from pgha.render.patroni import PATRONI_CONFIG_PATH
from pgha.settings import temporal_settings
from pgha.spec import ClusterSpec, PatroniSettings, PowerControl, Role, load_spec
from pgha.temporal import connect
from pgha.worker import in_process_worker

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
#: Five runs give a median that one odd run does not move.
DEFAULT_ROUNDS = 5
PATRONICTL = f"patronictl -c {PATRONI_CONFIG_PATH}"
#: A refused drill (the cluster was not whole) is retried once after waiting this long at
#: most for every member to run again.
WHOLE_WAIT_S = 120
#: Between two drills: HAProxy's checks of a member that just rejoined (downinter 2s, rise
#: 1) and keepalived's priorities settle, so the next drill starts from a quiet cluster.
PAUSE_S = 5
#: After changing the DCS timers: every member takes them up at its next cycle (Patroni's
#: etcd watch usually wakes it at once), and the leader takes a lease with the new ttl at
#: its next refresh. Waited on top of the longer loop_wait of the two.
TIMERS_SETTLE_S = 3
#: An interrupted bench cancels its drill, which then heals the cluster (up to twice
#: drill.heal_timeout_s when it reinitialises a member): wait that long for it.
CANCEL_WAIT_S = 600


# ------------------------------------------------------------------ the lab


@dataclass(frozen=True)
class Lab:
    spec: ClusterSpec
    #: Lab host name -> docker container.
    containers: dict[str, str]

    @property
    def postgres(self) -> list[str]:
        return [self.containers[h.name] for h in self.spec.hosts_with(Role.postgres)]


async def find_lab(scenarios: list[Scenario]) -> Lab:
    """The lab's spec (clusters/lab.yaml) and running containers.

    :raises BenchError: no lab, a host not running, or a spec the drills would refuse.
    """
    spec = load_spec("lab", ROOT / "clusters")
    containers = {h.name: h.container for h in await lab_status() if h.state == "running"}
    missing = [h.name for h in spec.hosts if h.name not in containers]
    if missing:
        raise BenchError(f"lab hosts not running: {', '.join(missing)} (`pgha lab status`)")
    if spec.drill.require_approval:
        raise BenchError("clusters/lab.yaml asks for an approval before each drill "
                         "(drill.require_approval); the bench needs it false")  # fmt: skip
    if Scenario.host_loss in scenarios and spec.drill.power is PowerControl.none:
        raise BenchError("host-loss needs drill.power in clusters/lab.yaml (lab)")
    return Lab(spec=spec, containers=containers)


async def patronictl(lab: Lab, args: str, timeout: float = 60) -> str:
    """``patronictl <args>`` on the first PostgreSQL host that runs it (a drill that went
    wrong may have left one down).

    :raises BenchError: it failed on every host.
    """
    errors = []
    for container in lab.postgres:
        try:
            return await run_in(container, f"{PATRONICTL} {args}", timeout=timeout)
        except (ExecFailed, TimeoutError) as err:
            errors.append(str(err) or f"{container}: timed out")
    raise BenchError(f"`patronictl {args}` failed on every PostgreSQL host: {'; '.join(errors)}")


async def patroni_version(lab: Lab) -> tuple[int, int, int]:
    out = await run_in(lab.postgres[0], "patroni --version", timeout=60)
    return parse_patroni_version(out)


def whole_problem(members: list[dict[str, Any]]) -> str:
    """What keeps `patronictl list -f json` from showing a whole cluster ('' when whole):
    one running leader, every other member running or streaming."""
    leaders = [m for m in members if m.get("Role") == "Leader" and m.get("State") == "running"]
    if len(leaders) != 1:
        return f"{len(leaders)} running leaders"
    down = [f"{m.get('Member')} {m.get('State')}" for m in members
            if m.get("State") not in ("running", "streaming")]  # fmt: skip
    return ", ".join(down)


async def wait_whole(lab: Lab, within: float) -> str:
    """Poll Patroni's view until the cluster looks whole; '' then, else the last problem.
    The drill's own guard rails (lag, etcd, proxies, VIP) decide for real on the retry."""
    deadline, problem = time.monotonic() + within, "not asked yet"
    while time.monotonic() < deadline:
        try:
            problem = whole_problem(json.loads(await patronictl(lab, "list -f json")))
        except (BenchError, ValueError) as err:
            problem = str(err)
        if not problem:
            return ""
        await asyncio.sleep(5)
    return problem


# ------------------------------------------------------------------ Patroni's DCS timers

Timers = dict[str, int | None]


async def dcs_timers(lab: Lab) -> Timers:
    """ttl, loop_wait and retry_timeout as stored in the DCS (None: not set, Patroni's
    default applies)."""
    config = yaml.safe_load(await patronictl(lab, "show-config")) or {}
    return {k: config.get(k) for k in TIMERS}


def running_timers(stored: Timers) -> Timers:
    """The stored timers with Patroni's defaults (PatroniSettings' own) for absent keys."""
    defaults = PatroniSettings()
    return {k: getattr(defaults, k) if v is None else v for k, v in stored.items()}


def edit_command(values: Timers) -> str:
    """The patronictl arguments that set ``values`` (``key=null`` removes a key)."""
    sets = " ".join(f"-s {k}={'null' if v is None else v}" for k, v in values.items())
    return f"edit-config --force --quiet {sets}"


async def set_timers(lab: Lab, values: Timers, settle_s: float) -> None:
    """Write the timers into the DCS, check they are there, and give the members
    ``settle_s`` to take them up.

    :raises BenchError: they did not stick.
    """
    await patronictl(lab, edit_command(values))
    now = await dcs_timers(lab)
    if now != values:
        raise BenchError(f"patronictl edit-config left the DCS timers at {now}, not {values}")
    await asyncio.sleep(settle_s)


async def restore_timers(lab: Lab, values: Timers, settle_s: float) -> bool:
    """Put the DCS timers back; on failure print how to do it by hand (never raises: it
    runs in a ``finally`` and must not hide the error that got there)."""
    try:
        await set_timers(lab, values, settle_s)
        print(f"Patroni's DCS timers put back: {values}")
        return True
    except Exception as err:  # the bench's own error, if any, matters more; say what to do
        print(f"COULD NOT put Patroni's DCS timers back ({err}). Do it by hand:\n"
              f"  docker exec {lab.postgres[0]} {PATRONICTL} {edit_command(values)}")  # fmt: skip
        return False


# ------------------------------------------------------------------ one drill


def failure_of(err: WorkflowFailureError) -> tuple[str, str, Any]:
    """The type, message and first detail of the ApplicationError behind a failed
    workflow (as `pgha run drill` reads it); ("Cancelled", ...) when it was cancelled."""
    cause: BaseException | None = err.cause
    while cause is not None and not isinstance(cause, ApplicationError | CancelledError):
        cause = cause.__cause__
    if isinstance(cause, CancelledError):
        return "Cancelled", "the drill was cancelled", None
    if isinstance(cause, ApplicationError):
        return cause.type or "", cause.message, cause.details[0] if cause.details else None
    return "", str(err.cause or err), None


async def cancel_drill(handle: WorkflowHandle[Any, Any]) -> None:
    """Interrupted (Ctrl-C): the bench's worker goes away with it, and the drill would hold
    the cluster's lock, its fault maybe still in place, with nobody to run it. Cancel it
    while the worker is still here: the drill heals the cluster on cancellation."""
    print(f"interrupted: cancelling {handle.id}; the drill heals the cluster first "
          f"(up to {CANCEL_WAIT_S} s)")  # fmt: skip
    with contextlib.suppress(Exception):
        await handle.cancel()
        await asyncio.wait_for(handle.result(), CANCEL_WAIT_S)


async def drill_once(
    client: Client, task_queue: str, lab: Lab, spec: ClusterSpec, scenario: Scenario,
    round_: int, rate: float,
) -> DrillRun:  # fmt: skip
    """Run one drill to its end and record it, failed or not.

    :raises BenchError: refused twice: the cluster is not whole.
    """
    inp = DrillInput(spec=spec, scenario=scenario, rate=rate)
    for attempt in (1, 2):
        started = time.monotonic()
        handle = await start_when_free(client, DRILL, spec.cluster, inp, task_queue)
        ids = {"workflow_id": handle.id, "run_id": handle.result_run_id or ""}
        try:
            report = DrillReport.model_validate(await handle.result())
            return replace(DrillRun.of_report(report, round_, time.monotonic() - started), **ids)
        except WorkflowFailureError as err:
            wall = time.monotonic() - started
            kind, message, details = failure_of(err)
            if kind == "DrillFailed" and isinstance(details, dict):
                run = DrillRun.of_report(DrillReport.model_validate(details), round_, wall)
                return replace(run, **ids)
            if kind != "DrillRefused":
                return DrillRun(scenario=scenario, round=round_, passed=False, reason=message,
                                wall_s=round(wall, 2), **ids)  # fmt: skip
            if attempt == 2:
                raise BenchError(
                    f"{scenario.value} refused twice: {message}. Make the lab whole "
                    "(`pgha status --cluster lab`) and run the bench again"
                ) from None
            print(f"   refused: {message}\n   waiting up to {WHOLE_WAIT_S} s for the "
                  "cluster to be whole, then trying once more")  # fmt: skip
            if problem := await wait_whole(lab, WHOLE_WAIT_S):
                print(f"   still not whole ({problem}); trying anyway")
        except asyncio.CancelledError:
            await cancel_drill(handle)
            raise
    raise AssertionError("unreachable: the second refusal raises")


async def run_drills(
    lab: Lab, spec: ClusterSpec, scenarios: list[Scenario], rounds: int, rate: float,
    runs: list[DrillRun],
) -> None:  # fmt: skip
    """The drills, round-robin, on a worker in this process with a task queue of its own
    (as bench/restore.py); each finished one is appended to ``runs`` at once, so an
    interrupted bench still has them."""
    client = await connect(temporal_settings())
    task_queue = f"bench-drills-{int(time.time())}"
    plan = schedule(scenarios, rounds)
    async with in_process_worker(client, task_queue):
        for i, (round_, scenario) in enumerate(plan, 1):
            print(f"[{i}/{len(plan)}] round {round_}: {scenario.value}")
            run = await drill_once(client, task_queue, lab, spec, scenario, round_, rate)
            runs.append(run)
            print(f"   {describe(run)}")
            if i < len(plan):
                await asyncio.sleep(PAUSE_S)


# ------------------------------------------------------------------ report


@dataclass(frozen=True)
class Options:
    scenarios: list[Scenario]
    rounds: int
    rate: float
    preset: Preset
    out: Path


@dataclass(frozen=True)
class Setup:
    """What the drills ran against."""

    patroni_version: str
    #: The DCS timers found before the bench (None: absent, Patroni's default).
    dcs_before: Timers
    #: The timers the drills' spec had, and those Patroni ran with (see effective_timers).
    spec_timers: dict[str, int]
    effective: dict[str, int]
    rule_ok: bool
    haproxy: list[str]


def timers_of(p: PatroniSettings) -> dict[str, int]:
    return {k: int(getattr(p, k)) for k in TIMERS}


def commit() -> str:
    """pgha's commit (bench/restore.py's), or "unknown" without git: the results are
    written on the way out of a failed bench too, and must not fail there."""
    try:
        return git_commit()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def result_json(
    opts: Options, setup: Setup, runs: list[DrillRun], stopped: str, restored: bool | None,
    seconds: float,
) -> dict[str, Any]:  # fmt: skip
    effective = PatroniSettings(**setup.effective)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "pgha_commit": commit(),
        "machine": {"hostname": socket.gethostname(), "cpus": os.cpu_count()},
        "complete": not stopped,
        "stopped": stopped,
        "preset": opts.preset.value,
        "scenarios": [s.value for s in opts.scenarios],
        "rounds": opts.rounds,
        "rate": opts.rate,
        "patroni": {
            "version": setup.patroni_version,
            "dcs_before": setup.dcs_before,
            "spec": setup.spec_timers,
            "effective": setup.effective,
            "rule_ok": setup.rule_ok,
            "dcs_restored": restored,
        },
        "haproxy_checks": setup.haproxy,
        "summary": [asdict(s) for s in summarise(runs, effective, opts.preset)],
        "runs": [asdict(r) for r in runs],
        "bench_s": round(seconds, 1),
    }


def header(opts: Options, setup: Setup, runs: list[DrillRun]) -> str:
    t, e = setup.spec_timers, setup.effective
    timers = f"ttl {t['ttl']}, loop_wait {t['loop_wait']}, retry_timeout {t['retry_timeout']}"
    if e != t:
        timers += (f" (Patroni runs them as ttl {e['ttl']}, loop_wait {e['loop_wait']}, "
                   f"retry_timeout {e['retry_timeout']}: floors use these)")  # fmt: skip
    return "\n".join([
        f"{len(runs)} drill(s) in {opts.rounds} round(s) at {opts.rate:g} writes/s, preset "
        f"{opts.preset.value}; Patroni {setup.patroni_version}: {timers}",
        "HAProxy: " + "; ".join(setup.haproxy),
        "gaps in seconds as median / worst; lost rows = acknowledged writes missing; "
        "promoted = Patroni's new leader, s after the fault; floor = ttl-bound floor",
    ])  # fmt: skip


# ------------------------------------------------------------------ main


async def prepare(lab: Lab, opts: Options) -> tuple[ClusterSpec, Setup]:
    """The spec the drills get (with the preset's timers) and what the run is set against.

    :raises BenchError: the DCS timers are not the lab spec's (an earlier run left them).
    """
    version = await patroni_version(lab)
    before = await dcs_timers(lab)
    wanted = timers_of(lab.spec.patroni)
    if running_timers(before) != wanted:
        raise BenchError(
            f"the lab's DCS timers are {running_timers(before)}, its spec's {wanted} (an "
            "interrupted --preset fast run?). Put them back first:\n"
            f"  docker exec {lab.postgres[0]} {PATRONICTL} {edit_command(dict(wanted))}"
        )
    spec = lab.spec
    if opts.preset is Preset.fast:
        # The drills' copy of the spec carries the preset, so their reports and the floors
        # name the timers the cluster really ran with.
        spec = spec.model_copy(update={"patroni": with_timers(spec.patroni, FAST_FAILOVER)})
    effective = effective_timers(spec.patroni, version)
    if timers_of(effective) != timers_of(spec.patroni):
        print(f"WARNING: Patroni {'.'.join(map(str, version))} raises timers under its "
              f"minimums (ttl 20): it runs {timers_of(effective)}, not "
              f"{timers_of(spec.patroni)}; the floors below use what it runs")  # fmt: skip
    setup = Setup(
        patroni_version=".".join(map(str, version)),
        dcs_before=before,
        spec_timers=timers_of(spec.patroni),
        effective=timers_of(effective),
        rule_ok=obeys_rule(spec.patroni),
        haproxy=sorted({line.strip() for line in haproxy_cfg(spec).content.splitlines()
                        if line.strip().startswith("default-server")}),
    )  # fmt: skip
    return spec, setup


async def main(opts: Options) -> None:
    started = time.monotonic()
    lab = await find_lab(opts.scenarios)
    spec, setup = await prepare(lab, opts)
    runs: list[DrillRun] = []
    stopped, restored = "", None
    try:
        try:
            if opts.preset is Preset.fast:
                fast = timers_of(spec.patroni)
                print(f"setting Patroni's DCS timers to the fast preset {fast}")
                old_loop = running_timers(setup.dcs_before)["loop_wait"] or 0
                await set_timers(lab, dict(fast), max(old_loop, fast["loop_wait"])
                                 + TIMERS_SETTLE_S)  # fmt: skip
            await run_drills(lab, spec, opts.scenarios, opts.rounds, opts.rate, runs)
        finally:
            if opts.preset is Preset.fast:
                restored = await restore_timers(
                    lab, setup.dcs_before, spec.patroni.loop_wait + TIMERS_SETTLE_S
                )
    except BaseException as err:  # recorded, then raised on: the results say why they stop
        interrupted = isinstance(err, asyncio.CancelledError | KeyboardInterrupt)
        stopped = "interrupted" if interrupted else str(err) or type(err).__name__
        raise
    finally:
        write(opts, setup, runs, stopped, restored, time.monotonic() - started)


def write(
    opts: Options, setup: Setup, runs: list[DrillRun], stopped: str, restored: bool | None,
    seconds: float,
) -> None:  # fmt: skip
    """Print the table and write the JSON: also for a bench that stopped early, whose
    finished drills are worth keeping (``complete`` false, ``stopped`` says why), beside
    the full results rather than over them (``drills.partial.json``)."""
    if not runs:
        return
    data = result_json(opts, setup, runs, stopped, restored, seconds)
    out = opts.out.with_suffix(".partial.json") if stopped else opts.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    effective = PatroniSettings(**setup.effective)
    print()
    print(header(opts, setup, runs))
    print(table(summarise(runs, effective, opts.preset)))
    if stopped:
        print(f"stopped early: {stopped}")
    try:
        shown = out.relative_to(ROOT)
    except ValueError:
        shown = out
    print(f"written: {shown} ({seconds / 60:.0f} min)")


#: freeze-primary is left out by default: on the lab's Patroni 3.0.2 without a watchdog about
#: half the runs lose the successor's writes to a Patroni defect fixed in 3.0.3, and healing
#: then reinitialises both replicas, minutes per run (docs/drills.md). Its figures measure
#: that defect, not failover speed.
DEFAULT_SCENARIOS = [s for s in Scenario if s is not Scenario.freeze_primary]


def parse_scenarios(text: str) -> list[Scenario]:
    """``a,b`` -> scenarios, in the order given, without repeats.

    :raises ValueError: an unknown name (the message lists the known ones).
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = {s.value: s for s in Scenario}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(known)}")  # fmt: skip
    return list(dict.fromkeys(known[n] for n in names))


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", default=",".join(s.value for s in DEFAULT_SCENARIOS),
                        help="comma-separated scenarios (default: all but freeze-primary, "
                             "which on Patroni < 3.0.3 without a watchdog loses writes about "
                             "half the time and takes minutes to heal)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"drills of each scenario (default {DEFAULT_ROUNDS})")  # fmt: skip
    parser.add_argument("--rate", type=float, default=20.0,
                        help="probe writes (and reads) per second (default 20)")  # fmt: skip
    parser.add_argument("--preset", choices=[p.value for p in Preset], default="default",
                        help="Patroni timers: the lab spec's, or the fast-failover preset "
                             "(set in the DCS for the run, then put back)")  # fmt: skip
    parser.add_argument("--out", type=Path,
                        help="JSON path (default bench/results/drills.json, "
                             "drills-fast.json for --preset fast)")  # fmt: skip
    args = parser.parse_args()
    try:
        scenarios = parse_scenarios(args.scenarios)
    except ValueError as err:
        parser.error(str(err))
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not 0 < args.rate <= 200:
        parser.error("--rate must be above 0 and at most 200")
    preset = Preset(args.preset)
    name = "drills.json" if preset is Preset.default else f"drills-{preset.value}.json"
    opts = Options(scenarios, args.rounds, args.rate, preset, args.out or RESULTS / name)
    try:
        asyncio.run(main(opts))
    except (BenchError, ExecFailed) as err:
        sys.exit(f"bench.drills: {err}")
    except KeyboardInterrupt:
        sys.exit("bench.drills: interrupted (a running drill was cancelled: it heals the cluster)")


if __name__ == "__main__":
    cli()
