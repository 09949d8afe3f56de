"""The report store: operation reports as JSON plus a human summary, on this machine's disk.
Owns the layout under ``<state>/reports``; knows nothing of Temporal or of what a report says.

Layout: ``<state>/reports/<cluster>/<kind>/<UTC stamp>-<short id>.json`` with the summary
``.txt`` beside it, and for reports that have one a picture ``.png`` (a drill's timeline).
The file stem is the report id. Files are 0600 and directories 0700: reports name hosts,
paths and sentinel values an operator may not want world-readable.

Every file is written once, whole, through a temporary file and a rename, so readers never
see half a report and no lock is needed (unlike the secret store, nothing is ever
read-modified-written). The store is local: with workers on several machines each keeps
the reports of the operations it finished, like the secret store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ValidationError

from pgha.errors import PghaError
from pgha.models import NAME_PATTERN, Model
from pgha.settings import state_dir

#: ``20261126T031500Z-1a2b3c4d``: sorts by time as text, to the second.
ID_PATTERN = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{8}$")
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
DEFAULT_LIMIT = 20


class ReportKind(StrEnum):
    """What produced a report; one directory per kind (a drill adds a member here)."""

    backup = "backup"
    verify_restore = "verify-restore"
    drill = "drill"
    upgrade = "upgrade"
    reconfigure = "reconfigure"


class ReportError(PghaError):
    """The report store cannot do what was asked (bad cluster name or id)."""


class ReportNotFound(ReportError):
    """No report with that id, or none yet for that cluster and kind."""


class ReportUnreadable(ReportError):
    """A report file exists but is not valid JSON or not a report; names the file."""


class StoredReport(Model):
    """One stored report: what lists need (headline, verdict) and the report itself."""

    id: str
    kind: ReportKind
    cluster: str
    #: The operation's workflow id; for mutating ones that is the cluster's lock id, so the
    #: run id is what tells two runs apart in the Web UI.
    workflow_id: str
    run_id: str = ""
    #: When the reported thing finished (not when the file was written), UTC.
    created_at: AwareDatetime
    #: The verdict for reports that have one (restore verification); None for a backup.
    passed: bool | None = None
    headline: str
    #: The report model as JSON (``model_dump(mode="json")``).
    data: dict[str, Any]
    #: Where the JSON file is on this machine; not stored in the file itself.
    path: str = ""

    @property
    def summary_path(self) -> Path:
        return Path(self.path).with_suffix(".txt")

    @property
    def picture_path(self) -> Path:
        """Where the report's picture is kept; only some reports have one (check it exists)."""
        return Path(self.path).with_suffix(".png")


def reports_dir() -> Path:
    """The store's root, ``<state>/reports`` (not created here)."""
    return state_dir() / "reports"


def _cluster(cluster: str) -> str:
    """The cluster name, checked: it becomes a directory name, so no paths sneak in."""
    if not re.fullmatch(NAME_PATTERN, cluster):
        raise ReportError(
            f"{cluster!r} is not a cluster name (lowercase letters, digits and '-', "
            "starting with a letter): reports are kept per cluster name"
        )
    return cluster


def _make_dirs(cluster: str, kind: ReportKind) -> Path:
    """``reports/<cluster>/<kind>``, each level made 0700 when missing (left as it is
    otherwise: an operator may have opened it up on purpose)."""
    path = state_dir()
    for part in ("reports", cluster, kind.value):
        path = path / part
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # mkdir's mode is cut by the umask
    return path


def _write_atomic(path: Path, content: str | bytes) -> None:
    """Write ``content`` (text as UTF-8) to ``path`` (0600) so a reader sees the old file or
    the whole new one, never a part, and a crash leaves at most a hidden temporary file."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def _report_id(
    kind: ReportKind, cluster: str, workflow_id: str, run_id: str, created: datetime
) -> str:
    """Derived from what identifies the run, so a retried save writes the same file."""
    key = "\0".join((kind.value, cluster, workflow_id, run_id, created.isoformat()))
    return f"{created:{STAMP_FORMAT}}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def save_report(
    kind: ReportKind,
    cluster: str,
    workflow_id: str,
    report: BaseModel,
    summary: str,
    *,
    headline: str | None = None,
    passed: bool | None = None,
    run_id: str = "",
    created_at: datetime | None = None,
    picture: bytes | None = None,
) -> StoredReport:
    """Store ``report``, its human ``summary`` and, when given, its ``picture`` (PNG).

    Idempotent when ``created_at`` is given: the id is derived from kind, cluster, workflow
    and run ids and that time, so saving the same report again rewrites the same files.

    :param headline: one line for lists; default the summary's first line.
    :param passed: the report's verdict, when it has one.
    :param created_at: when the reported thing finished (timezone-aware); default now.
    :returns: the stored report, with its id and path.
    :raises ReportError: ``cluster`` is not a cluster name.
    :raises ValueError: ``created_at`` has no timezone.
    """
    _cluster(cluster)
    if created_at is not None and created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    created = (created_at or datetime.now(UTC)).astimezone(UTC)
    report_id = _report_id(kind, cluster, workflow_id, run_id, created)
    first = (headline if headline is not None else summary.strip().split("\n", 1)[0]).strip()
    directory = _make_dirs(cluster, kind)
    stored = StoredReport(
        id=report_id,
        kind=kind,
        cluster=cluster,
        workflow_id=workflow_id,
        run_id=run_id,
        created_at=created,
        passed=passed,
        headline=" ".join(first.split()),
        data=report.model_dump(mode="json"),
        path=str(directory / f"{report_id}.json"),
    )
    # The summary and picture first: the JSON is what lists find, so it must not exist
    # without them.
    _write_atomic(stored.summary_path, summary.rstrip("\n") + "\n")
    if picture is not None:
        _write_atomic(stored.picture_path, picture)
    _write_atomic(Path(stored.path), stored.model_dump_json(indent=2, exclude={"path"}) + "\n")
    return stored


def _stamp(report_id: str) -> str:
    return report_id.split("-", 1)[0]


def _read(path: Path) -> StoredReport:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return StoredReport.model_validate({**data, "path": str(path)})
    except (OSError, ValueError, ValidationError) as err:
        detail = str(err).splitlines()[0]
        raise ReportUnreadable(
            f"{path}: report is unreadable ({detail}); move it aside and look at it by hand"
        ) from None


def list_reports(
    cluster: str, kind: ReportKind | None = None, limit: int = DEFAULT_LIMIT
) -> list[StoredReport]:
    """The cluster's reports (of one kind, or all), newest first, at most ``limit``.

    Reads only the newest files: names sort by time to the second, and reports within the
    same second are ordered by their exact time.

    :raises ReportUnreadable: one of the newest files is damaged. Never skipped: hiding it
        could show an older passing verification in place of a newer failed one.
    """
    root = reports_dir() / _cluster(cluster)
    if limit < 1:
        return []
    kinds = [kind] if kind is not None else list(ReportKind)
    paths = [
        p
        for k in kinds
        for p in (root / k.value).glob("*.json")
        if ID_PATTERN.fullmatch(p.stem) and p.is_file()
    ]
    paths.sort(key=lambda p: p.stem, reverse=True)
    picked: list[StoredReport] = []
    for path in paths:
        if len(picked) >= limit and _stamp(path.stem) != _stamp(picked[-1].id):
            break
        picked.append(_read(path))
    picked.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    return picked[:limit]


def latest_report(cluster: str, kind: ReportKind) -> StoredReport | None:
    """The cluster's newest report of ``kind``, or None when it has none."""
    newest = list_reports(cluster, kind, limit=1)
    return newest[0] if newest else None


def load_report(report_id: str) -> StoredReport:
    """The report with id ``report_id`` (a file stem), from any cluster and kind.

    :raises ReportNotFound: no such id in this machine's store (the message names both).
    :raises ReportUnreadable: the file is damaged.
    """
    root = reports_dir()
    if not ID_PATTERN.fullmatch(report_id):
        raise ReportNotFound(
            f"{report_id!r} is not a report id (ids look like 20261126T031500Z-1a2b3c4d); "
            "`pgha report --list --cluster NAME` lists them"
        )
    matches = sorted(root.glob(f"*/*/{report_id}.json"))
    if not matches:
        raise ReportNotFound(
            f"no report {report_id} in {root}: reports are kept on the machine of the worker "
            "that ran the operation; `pgha report --list --cluster NAME` lists the ones here"
        )
    return _read(matches[0])


def read_summary(report: StoredReport) -> str | None:
    """The stored human summary of ``report``, or None when its file is gone."""
    try:
        return report.summary_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
