"""Plain-text summaries of backup and restore-verification reports, for a person paged at
night: the verdict first, then what was proven and how long it took. Pure: no I/O, no clock
(ages are measured against times inside the report, or a ``now`` the caller passes).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pgha.backup_models import BackupRecord, BackupResult, CheckOutcome, VerifyReport

PASS_MARK = "✓"
FAIL_MARK = "✗"
#: The phases of a verification in the order they run; others follow in the report's order.
PHASE_ORDER = ("sentinel", "verify", "restore", "recovery", "checks", "teardown", "total")


def human_bytes(n: int) -> str:
    """``1536`` -> ``1.5 KiB``: binary units, as pgBackRest and df -h count."""
    if abs(n) < 1024:
        return f"{n} B"
    units = ("KiB", "MiB", "GiB", "TiB", "PiB")
    size, i = n / 1024, 0
    while abs(size) >= 1024 and i < len(units) - 1:
        size, i = size / 1024, i + 1
    return f"{size:.1f} {units[i]}"


def human_seconds(seconds: float) -> str:
    """``0.42`` -> ``0.4 s``; ``305`` -> ``5 min 05 s``; ``7380`` -> ``2 h 03 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def human_age(delta: timedelta) -> str:
    """How old something is, to the minute: ``42 min``, ``5 h 12 min``, ``3 d 4 h``."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 0:
        return "in the future (clock skew?)"
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // 1440} d {minutes % 1440 // 60} h"


def utc(when: datetime) -> str:
    """``2026-11-26 03:15:00 UTC``: reports span machines and zones, so always UTC."""
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _set_words(record: BackupRecord, at: datetime) -> str:
    """``20261126-031500F (full, 5 h 12 min old)``: the set and its age at ``at``."""
    return f"{record.label} ({record.type.value}, {human_age(at - record.stopped)} old)"


def _sentinel_check(report: VerifyReport) -> CheckOutcome | None:
    return next((c for c in report.checks if "sentinel" in c.name.lower()), None)


def verify_headline(report: VerifyReport, *, with_reason: bool = True) -> str:
    """One line: verdict, cluster, set and its age when restored, target host; the reason
    (its first line) when it failed, unless ``with_reason`` is False."""
    verdict = "PASSED" if report.passed else "FAILED"
    what = (
        f"set {_set_words(report.backup, report.started_at)}"
        if report.backup
        else "no backup set chosen"
    )
    line = f"{verdict} restore verification of {report.cluster}: {what} on {report.target_host}"
    if with_reason and not report.passed and report.reason:
        line += f": {report.reason.splitlines()[0]}"
    return line


def backup_headline(result: BackupResult) -> str:
    """One line: type, label, cluster, sizes, duration."""
    b = result.backup
    line = (
        f"{b.type.value} backup {b.label} of {result.cluster}: {human_bytes(b.size_bytes)} "
        f"({human_bytes(b.repo_size_bytes)} in the repository) in {human_seconds(b.duration_s)}"
    )
    if result.expired:
        line += f"; {len(result.expired)} set(s) expired"
    return line


def headline(report: VerifyReport | BackupResult) -> str:
    """The one-line headline of either kind of report."""
    if isinstance(report, VerifyReport):
        return verify_headline(report)
    return backup_headline(report)


def _sentinel_lines(report: VerifyReport) -> list[str]:
    s = report.sentinel
    if s is None:
        return ["sentinel: none written (the run stopped before writing it)"]
    lines = [
        f"sentinel: {s.value!r} written {utc(s.written_at)} "
        f"(xid {s.xid}, LSN {s.lsn or '?'}, WAL {s.wal_file or '?'})"
    ]
    expected = "present" if report.sentinel_expected else "absent (target time before it)"
    check = _sentinel_check(report)
    if check is None:
        found = "not checked"
    elif check.passed:
        found = f"{PASS_MARK} as expected"
    else:
        found = f"{FAIL_MARK} NOT as expected"
    lines.append(f"  expected {expected}: {found}")
    if s.row_counts:
        lines.append(
            f"  row counts of {len(s.row_counts)} table(s) taken with it "
            f"(writers waited {s.write_pause_ms:.0f} ms)"
        )
    return lines


def _check_lines(checks: list[CheckOutcome]) -> list[str]:
    if not checks:
        return ["checks: none ran"]
    width = max(len(c.name) for c in checks)
    lines = ["checks:"]
    for c in checks:
        mark = PASS_MARK if c.passed else FAIL_MARK
        detail = c.detail.splitlines() or [""]
        lines.append(
            f"  {mark} {c.name:<{width}}  {human_seconds(c.seconds):>10}  {detail[0]}".rstrip()
        )
        # Multi-line details (amcheck output, a WAL gap list) stay under the check.
        lines.extend(f"      {' ' * width}  {' ' * 10}  {more}" for more in detail[1:])
    return lines


def _timings_line(timings: dict[str, float]) -> str:
    known = [k for k in PHASE_ORDER if k in timings]
    other = [k for k in timings if k not in PHASE_ORDER]
    parts = [f"{k.replace('_', ' ')} {human_seconds(timings[k])}" for k in known + other]
    return "timings: " + (", ".join(parts) or "none recorded")


def _sizes_line(sizes: dict[str, int]) -> str:
    parts = [f"{k.replace('_', ' ')} {human_bytes(v)}" for k, v in sizes.items()]
    return "sizes: " + (", ".join(parts) or "none recorded")


def _set_lines(b: BackupRecord) -> list[str]:
    lines = [
        f"backup set: {b.label} ({b.type.value}), taken {utc(b.started)} - {utc(b.stopped)} "
        f"({human_seconds(b.duration_s)})",
        f"  {human_bytes(b.size_bytes)} of database, "
        f"{human_bytes(b.repo_size_bytes)} in the repository",
    ]
    if b.wal_start or b.wal_stop:
        timeline = f" (timeline {b.timeline})" if b.timeline is not None else ""
        lines.append(f"  WAL {b.wal_start or '?'} - {b.wal_stop or '?'}{timeline}")
    if b.prior:
        lines.append(f"  builds on {b.prior}")
    return lines


def verify_summary(report: VerifyReport) -> str:
    """The human summary of a restore verification: the verdict line, the whole reason when
    it failed, then the set, the sentinel, each check, timings and sizes."""
    lines = [verify_headline(report, with_reason=False)]
    if not report.passed:
        lines.append(f"reason: {report.reason or '(none given)'}")
    lines.append("")
    lines.append(f"cluster {report.cluster}, stanza {report.stanza}, workflow {report.workflow_id}")
    took = human_seconds((report.finished_at - report.started_at).total_seconds())
    lines.append(f"ran {utc(report.started_at)} - {utc(report.finished_at)} ({took})")
    lines.append(f"restored on {report.target_host} into {report.scratch_path}")
    if report.target_time is not None:
        lines.append(f"recovery target: {utc(report.target_time)} (point in time)")
    elif report.sentinel is not None:
        lines.append(f"recovery target: the sentinel's transaction (xid {report.sentinel.xid})")
    lines.extend(_set_lines(report.backup) if report.backup else ["backup set: none chosen"])
    lines.append("")
    lines.extend(_sentinel_lines(report))
    lines.append("")
    lines.extend(_check_lines(report.checks))
    lines.append("")
    lines.append(_timings_line(report.timings))
    lines.append(_sizes_line(report.sizes))
    return "\n".join(lines) + "\n"


def _repository_line(sets: list[BackupRecord]) -> str:
    if not sets:
        return "repository: no sets listed"
    counts: dict[str, int] = {}
    for s in sets:
        counts[s.type.value] = counts.get(s.type.value, 0) + 1
    kinds = ", ".join(f"{n} {t}" for t, n in counts.items())
    total = human_bytes(sum(s.repo_size_bytes for s in sets))
    return (
        f"repository now: {len(sets)} set(s) ({kinds}), {total}; oldest {sets[0].label}, "
        f"newest {sets[-1].label}"
    )


def backup_summary(result: BackupResult) -> str:
    """The human summary of a finished backup; the first line is its headline."""
    b = result.backup
    lines = [backup_headline(result), ""]
    lines.append(f"cluster {result.cluster}, stanza {result.stanza}, primary {result.primary}")
    lines.append(f"archive check before the backup: {human_seconds(result.check_s)}")
    lines.extend(_set_lines(b))
    if b.lsn_start or b.lsn_stop:
        lines.append(f"  LSN {b.lsn_start or '?'} - {b.lsn_stop or '?'}")
    expired = ", ".join(result.expired) if result.expired else "nothing"
    lines.append(f"expired under the retention: {expired}")
    lines.append(_repository_line(result.sets))
    return "\n".join(lines) + "\n"


def verification_concern(report: VerifyReport | None, max_age_hours: float, now: datetime) -> str:
    """Why the last verification should worry an operator ("" when it should not): it
    failed, it is older than ``max_age_hours``, or there is none."""
    if report is None:
        return "no restore verification on record"
    if not report.passed:
        return f"the last restore verification FAILED: {report.reason or '(no reason given)'}"
    age = now - report.finished_at
    if age > timedelta(hours=max_age_hours):
        return (
            f"the last restore verification is {human_age(age)} old, older than "
            f"backup.verify.max_age_hours ({max_age_hours:g} h)"
        )
    return ""
