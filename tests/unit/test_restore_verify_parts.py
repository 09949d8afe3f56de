"""Pure parts of restore verification: the scratch instance's files, choosing the set,
reading why a recovery stopped, and the spec's rules for the verify host."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from pgha.backup_models import BackupRecord, BackupSets, BackupType
from pgha.errors import SpecError
from pgha.hosts.ops.restore_verify import _POLL, poll_facts, recovery_failure
from pgha.render.restore_verify import (
    RecoveryTarget,
    scratch_layout,
    verify_hba_conf,
    verify_pgbackrest_conf,
    verify_postgres_conf,
)
from pgha.spec import ClusterSpec, parse_spec, spec_to_yaml
from pgha.workflows.verify_restore import choose_set
from tests.specs import reference_data

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def spec(**backup: object) -> ClusterSpec:
    raw = reference_data()
    raw.setdefault("backup", {}).update(backup)
    return parse_spec(raw, "test.yaml")


def problems(**backup: object) -> list[str]:
    with pytest.raises(SpecError) as err:
        spec(**backup)
    return err.value.problems


def test_scratch_instance_cannot_reach_the_cluster_or_push_wal() -> None:
    s = spec()
    layout = scratch_layout(s)
    conf = verify_postgres_conf(s, layout, RecoveryTarget(xid=758))
    settings = dict(line.split(" = ", 1) for line in conf.splitlines() if " = " in line)
    assert settings["listen_addresses"] == "''"
    assert settings["archive_mode"] == "'off'"
    assert settings["primary_conninfo"] == "''"
    assert settings["synchronous_standby_names"] == "''"
    assert settings["recovery_target_xid"] == "'758'"
    assert settings["recovery_target_action"] == "'promote'"
    assert "archive-get" in settings["restore_command"]
    assert f"--config={layout.pgbackrest_conf}" in settings["restore_command"]
    assert settings["unix_socket_directories"] == f"'{layout.run}'"
    assert verify_hba_conf().splitlines()[-1] == "local all postgres peer"
    verify_host = s.verify_host()
    assert verify_host is not None
    pgbr = verify_pgbackrest_conf(s, layout, verify_host.name)
    assert f"pg1-path={layout.data}" in pgbr and "archive-async=n" in pgbr
    assert "pg1-host" not in pgbr  # restores locally, never onto a cluster member
    (repo,) = [h for h in s.hosts if "backup-repo" in h.roles]
    if verify_host.name != repo.name:  # the reference layout's verify1: over SSH
        assert f"repo1-host={repo.address}" in pgbr and "repo1-path" not in pgbr
    assert "repo1-path=" in verify_pgbackrest_conf(s, layout, repo.name)


def test_point_in_time_target() -> None:
    at = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)
    assert RecoveryTarget(time=at).settings()["recovery_target_time"] == at.isoformat()


def record(label: str, stopped: datetime) -> BackupRecord:
    return BackupRecord(
        label=label, type=BackupType.full, started=stopped - timedelta(minutes=5),
        stopped=stopped, size_bytes=1, repo_size_bytes=1,
    )  # fmt: skip


SETS = BackupSets(
    stanza="lab",
    status="ok",
    sets=[record("A", T0), record("B", T0 + timedelta(days=1))],
)


def test_choose_newest_named_or_newest_before_the_target_time() -> None:
    assert choose_set(SETS, None, None).label == "B"
    assert choose_set(SETS, "A", None).label == "A"
    assert choose_set(SETS, None, T0 + timedelta(hours=3)).label == "A"


@pytest.mark.parametrize(
    ("label", "at", "says"),
    [
        ("C", None, "no backup set C in stanza lab (it has: A, B)"),
        (None, T0 - timedelta(hours=1), "no backup set ended before"),
        ("B", T0 + timedelta(hours=1), "recovery cannot stop before a backup's end"),
    ],
)
def test_impossible_choices_are_refused_plainly(
    label: str | None, at: datetime | None, says: str
) -> None:
    with pytest.raises(ApplicationError, match=re.escape(says)) as err:
        choose_set(SETS, label, at)
    assert err.value.non_retryable


def test_recovery_failure_quotes_fatal_and_restore_command_errors_not_refused_connections() -> None:
    log = [
        "2026-11-26 12:14:33.513 GMT [860] FATAL:  the database system is starting up",
        "ERROR: [045]: unable to find 000000020000000000000011 in the archive",
        "2026-11-26 12:14:35.1 GMT [859] FATAL:  recovery ended before configured recovery "
        "target was reached",
    ]
    reason = recovery_failure(log)
    assert "unable to find 000000020000000000000011" in reason
    assert "recovery ended before configured recovery target" in reason
    assert "starting up" not in reason


def test_verify_host_must_be_the_repository_and_scratch_apart_from_data() -> None:
    assert spec().verify_host() is not None
    overlap = problems(verify={"scratch_path": "/var/lib/pgbackrest/verify"})
    assert any("backup.verify.scratch_path" in p and "overlaps backup.repo_path" in p
               for p in overlap)  # fmt: skip
    assert "backup.verify.host: no host named 'nosuch' in hosts" in problems(
        verify={"host": "nosuch"}
    )
    assert "port: 5499" in spec_to_yaml(spec())  # the new settings are printed


def test_recovery_poll_reads_one_fact_per_line_from_the_real_script(tmp_path: Path) -> None:
    # The poll script run for real with stand-in programs: a live postmaster refusing
    # connections (recovery under way), three segments restored.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, code in (("pg_ctl", 0), ("pg_isready", 1), ("psql", 0)):
        (bin_dir / name).write_text(f"#!/bin/sh\nexit {code}\n")
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "postgresql.log"
    log.write_text("".join(
        f'LOG:  restored log file "00000002000000000000001{i}" from archive\n' for i in range(3)
    ))  # fmt: skip
    script = _POLL.format(bin=bin_dir, data=tmp_path, run=tmp_path, port=5499, log=log)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    facts = poll_facts(out.stdout)
    assert facts["alive"] == "0" and facts["ready"] == "1" and "recovery" not in facts
    assert facts["restored"] == "3"
    assert facts["last"] == 'restored log file "000000020000000000000012"'
