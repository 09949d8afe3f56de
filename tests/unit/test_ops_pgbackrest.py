"""pgBackRest facts and ops, and the SSH trust ops, on a FakeHost.

Outputs marked "recorded" were taken on the lab (pgha-lab-backup1: bookworm, pgBackRest
2.45, OpenSSH 9.2) by running the fact's own command.
"""

from __future__ import annotations

import pytest

from pgha.errors import CommandFailed
from pgha.hosts.facts.haproxy import ProgramMissing
from pgha.hosts.facts.pgbackrest import (
    Account,
    console_lines,
    error_code,
    parse_account,
    parse_info,
    parse_public_key,
)
from pgha.hosts.ops import pgbackrest as ops
from pgha.hosts.ops.ssh_trust import (
    KeyUnusable,
    SshIdentity,
    authorized_entry,
    ensure_keypair,
    ensure_trust,
    known_host_entry,
    managed_text,
    shared_connection_entries,
)
from tests.unit.fakes import FakeHost

# Recorded: `pgbackrest --stanza=lab --output=json info` before stanza-create.
INFO_MISSING = (
    '[{"archive":[],"backup":[],"cipher":"none","db":[],"name":"lab","repo":[{"cipher":"none",'
    '"key":1,"status":{"code":1,"message":"missing stanza path"}}],"status":{"code":1,"lock":'
    '{"backup":{"held":false}},"message":"missing stanza path"}}]'
)
# Recorded: the same after the first full backup (and, HELD, while another backup ran).
INFO_FULL = (
    '[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"00000001000000000000000B",'
    '"min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000009",'
    '"stop":"000000010000000000000009"},"backrest":{"format":5,"version":"2.45"},"database":'
    '{"id":1,"repo-key":1},"error":false,"info":{"delta":23349917,"repository":{"delta":2851557,'
    '"size":2851557},"size":23349917},"label":"20261126-103004F","lsn":{"start":"0/9000028",'
    '"stop":"0/9000100"},"prior":null,"reference":null,"timestamp":{"start":1795689004,'
    '"stop":1795689009},"type":"full"}],"cipher":"none","db":[{"id":1,"repo-key":1,'
    '"system-id":7712425150120352774,"version":"15"}],"name":"lab","repo":[{"cipher":"none",'
    '"key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":'
    '{"held":false}},"message":"ok"}}]'
)
INFO_HELD = INFO_FULL.replace('"held":false', '"held":true')
# Derived from INFO_MISSING, not recorded: a stanza without backups (status 2).
INFO_NO_BACKUP = INFO_MISSING.replace('"code":1', '"code":2').replace(
    "missing stanza path", "no valid backups"
)
# Recorded: `pgbackrest check` on the repository host before SSH trust existed (exit 27).
CHECK_NO_TRUST = """\
WARN: unable to check pg1: [UnknownError] remote-0 process on '10.77.0.11' terminated unexpectedly [255]: Host key verification failed.
ERROR: [027]: no database found
       HINT: check indexed pg-path/pg-host configurations
"""  # noqa: E501
# Recorded: a full backup while an incremental one held the lock (exit 50).
BACKUP_LOCKED = """\
ERROR: [050]: unable to acquire lock on file '/tmp/pgbackrest/lab-backup.lock': Resource temporarily unavailable
       HINT: is another pgBackRest process running?
"""  # noqa: E501
# Written from pgBackRest's error list (archive-disabled is 087): not recorded here.
CHECK_ARCHIVE_OFF = "ERROR: [087]: archive_mode must be enabled\n"

# Recorded: `getent passwd postgres; id -gn postgres`.
ACCOUNT_POSTGRES = (
    "postgres:x:102:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\npostgres\n"
)
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGDSobDDdF5ExEpB3HkWmM/RDlNpqQ2ApGXzd8bmQEVY"
HOSTKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIxfndvAhcI//8dTuVEWLFuwDPZILJw23W484qe1Y6aX"
POSTGRES = parse_account(ACCOUNT_POSTGRES)
KEY = "/var/lib/postgresql/.ssh/id_ed25519"


# --- parsers --------------------------------------------------------------------------------


def test_parse_info_missing_stanza_does_not_exist() -> None:
    info = parse_info(INFO_MISSING, "lab")
    assert not info.exists and info.status_message == "missing stanza path"
    assert info.latest is None and not info.backup_running


def test_parse_info_full_backup_is_latest_full() -> None:
    info = parse_info(INFO_FULL, "lab")
    assert info.exists and info.latest_full is not None
    b = info.latest_full
    assert (b.label, b.type, b.size, b.repo_size, b.duration_s) == (
        "20261126-103004F",
        "full",
        23349917,
        2851557,
        5,
    )


def test_parse_info_lock_held_means_backup_running() -> None:
    assert parse_info(INFO_HELD, "lab").backup_running


def test_parse_info_no_valid_backups_exists() -> None:
    info = parse_info(INFO_NO_BACKUP, "lab")
    assert info.exists and info.latest is None


def test_parse_info_empty_list_is_missing_and_garbage_raises() -> None:
    assert not parse_info("[]", "lab").exists
    with pytest.raises(ValueError, match="unexpected pgbackrest info output"):
        parse_info("ERROR: nope", "lab")


def test_console_lines_and_error_code_from_check_output() -> None:
    lines = console_lines(CHECK_NO_TRUST)
    assert lines[0].startswith("WARN: unable to check pg1")
    assert lines[-1].strip() == "HINT: check indexed pg-path/pg-host configurations"
    assert error_code(27, CHECK_NO_TRUST) == 27
    assert error_code(1, BACKUP_LOCKED) == 50


def test_parse_account_postgres() -> None:
    assert POSTGRES == Account(
        name="postgres",
        uid=102,
        gid=104,
        group="postgres",
        home="/var/lib/postgresql",
        shell="/bin/bash",
    )


def test_parse_public_key_drops_comment_and_refuses_anything_else() -> None:
    assert parse_public_key(f"{PUB} postgres@db1\n") == PUB
    for bad in (
        f'command="sh" {PUB}',
        f"{PUB}\n{PUB}",
        "ssh-rsa AAAAB3NzaC1yc2E= x",
        "",
    ):
        with pytest.raises(ValueError):
            parse_public_key(bad)


# --- PgbackrestFailed -----------------------------------------------------------------------


def failed(stderr: str, exit_code: int) -> ops.PgbackrestFailed:
    host = FakeHost("backup1", "10.77.0.31")
    err = CommandFailed("backup1", "10.77.0.31", "pgbackrest check", exit_code, stderr)
    return ops.PgbackrestFailed(host, "pgbackrest check of lab", err, "lab")


def test_pgbackrest_failed_archive_off_is_permanent_with_its_words() -> None:
    err = failed(CHECK_ARCHIVE_OFF, 87)
    assert err.permanent and err.code == 87
    assert "[087]:\n  ERROR: [087]: archive_mode must be enabled" in str(err)
    assert "does not archive WAL to this repository" in str(err)


# Recorded: `pgbackrest check` against a re-created cluster of the same name (exit 28).
CHECK_OTHER_DATABASE = """\
ERROR: [028]: backup and archive info files exist but do not match the database
       HINT: is this the correct stanza?
       HINT: did an error occur during stanza-upgrade?
"""


def test_pgbackrest_failed_stanza_of_other_database_is_permanent_and_says_what_to_do() -> None:
    err = failed(CHECK_OTHER_DATABASE, 28)
    assert err.permanent
    msg = str(err)
    assert "HINT: is this the correct stanza?" in msg
    assert "belongs to another database" in msg and "pgha never deletes backups" in msg
    assert "stanza-delete" in msg


def test_pgbackrest_failed_no_database_and_lock_are_transient() -> None:
    assert not failed(CHECK_NO_TRUST, 27).permanent
    assert "Host key verification failed" in str(failed(CHECK_NO_TRUST, 27))
    assert not failed(BACKUP_LOCKED, 50).permanent


# --- managed blocks -------------------------------------------------------------------------


def test_managed_text_appends_block_and_keeps_operator_lines() -> None:
    text = managed_text("ssh-ed25519 AAAA operator\n", "lab", ["a", "b"])
    assert text.splitlines() == [
        "ssh-ed25519 AAAA operator",
        "# BEGIN pgha cluster lab: managed by pgha, changes are overwritten",
        "a",
        "b",
        "# END pgha cluster lab",
    ]
    assert managed_text(text, "lab", ["a", "b"]) == text  # idempotent


def test_managed_text_replaces_own_block_only() -> None:
    first = managed_text(managed_text("x\n", "other", ["o"]), "lab", ["old"])
    second = managed_text(first, "lab", ["new"])
    assert "old" not in second and "new" in second
    assert "# BEGIN pgha cluster other:" in second and "o" in second.splitlines()


def test_managed_text_empty_entries_remove_block() -> None:
    assert managed_text(managed_text("x\n", "lab", ["a"]), "lab", []) == "x\n"
    assert managed_text("", "lab", []) == ""


def identity(host: str = "db1", address: str = "10.77.0.11") -> SshIdentity:
    return SshIdentity(
        host=host, address=address, user="postgres", public_key=f"{PUB} c", host_key=HOSTKEY
    )


def test_authorized_entry_is_restricted_to_peer_address() -> None:
    assert authorized_entry(identity(), "10.77.0.11", "lab") == (
        f'from="10.77.0.11",restrict {PUB} pgha:lab:db1:postgres'
    )


def test_known_host_entry_uses_brackets_for_other_ports() -> None:
    assert known_host_entry(identity(), "10.77.0.11") == f"10.77.0.11 {HOSTKEY}"
    assert known_host_entry(identity(), "10.77.0.11", 2222) == f"[10.77.0.11]:2222 {HOSTKEY}"


# --- ssh trust ops --------------------------------------------------------------------------


def state(kind: str = "regular file", mode: str = "600", owner: str = "postgres") -> str:
    return f"{kind}\t{mode}\t{owner}\t{owner}\t102\t104\t10\n{'0' * 64}  -\n"


def key_host(key_state: str, derive_exit: int = 0, derive_out: str = f"{PUB} c\n") -> FakeHost:
    return (
        FakeHost("db1", "10.77.0.11")
        .on("pgha-file-state /var/lib/postgresql/.ssh follow", state("directory", "700"))
        .on(f"pgha-file-state {KEY}", key_state)
        .on("ssh-keygen -q", "")
        .on("ssh-keygen -y", derive_out, exit_code=derive_exit, stderr="incorrect passphrase")
        .on("chmod")
        .on("chown")
    )


async def test_ensure_keypair_absent_generates_as_user() -> None:
    host = key_host("absent\n")
    out, public = await ensure_keypair(host, POSTGRES, "pgha:lab:db1:postgres")
    assert out.changed and public == PUB
    assert (
        "runuser -u postgres -- ssh-keygen -q -t ed25519 -N '' -C pgha:lab:db1:postgres "
        f"-f {KEY}" in host.commands
    )


async def test_ensure_keypair_existing_is_kept_and_loose_mode_fixed() -> None:
    host = key_host(state(mode="644"))
    out, public = await ensure_keypair(host, POSTGRES, "pgha:lab:db1:postgres")
    assert not host.ran("ssh-keygen -q")
    assert f"chmod 0600 {KEY}" in host.commands and out.changed and public == PUB


async def test_ensure_keypair_converged_is_noop() -> None:
    host = key_host(state())
    out, _ = await ensure_keypair(host, POSTGRES, "pgha:lab:db1:postgres")
    assert not out.changed
    assert out.summary.endswith(f"postgres already has the key pair {KEY}")


async def test_ensure_keypair_encrypted_key_is_unusable() -> None:
    host = key_host(state(), derive_exit=255, derive_out="")
    with pytest.raises(KeyUnusable, match="Move it aside"):
        await ensure_keypair(host, POSTGRES, "pgha:lab:db1:postgres")


async def test_ensure_trust_writes_both_files_keeping_operator_keys() -> None:
    ssh = "/var/lib/postgresql/.ssh"
    host = (
        FakeHost("backup1", "10.77.0.31")
        .on(f"pgha-file-state {ssh} follow", state("directory", "700"))
        .on(f"pgha-file-state {ssh}/authorized_keys", state())
        .on(f"cat -- {ssh}/authorized_keys", "ssh-ed25519 AAAAOPERATOR admin\n")
        .on(f"pgha-file-state {ssh}/known_hosts", "absent\n")
        .on(f"pgha-file-state {ssh}/config", state())
        .on(f"cat -- {ssh}/config", "Host *\n    ServerAliveInterval 30\n")
        .on("mktemp")
    )
    out = await ensure_trust(host, POSTGRES, "lab", [(identity(), "10.77.0.11", 22)])
    assert out.changed
    written = [c.input for c in host.calls if c.input]
    assert written[0] is not None and written[0].startswith("ssh-ed25519 AAAAOPERATOR admin\n")
    assert f'from="10.77.0.11",restrict {PUB}' in written[0]
    assert written[1] is not None and f"10.77.0.11 {HOSTKEY}" in written[1]
    assert written[2] is not None and written[2].startswith("Host *\n    ServerAliveInterval 30\n")
    assert "Host 10.77.0.11\n    ControlMaster auto\n" in written[2]


def test_shared_connection_names_the_port_only_when_not_22() -> None:
    assert "    Port 2222" in shared_connection_entries("10.77.0.31", 2222)
    block = shared_connection_entries("10.77.0.31")
    assert block[0] == "Host 10.77.0.31" and not any("Port" in line for line in block)
    assert "    ControlPath ~/.ssh/pgha-mux-%C" in block


# --- pgBackRest ops -------------------------------------------------------------------------


async def test_ensure_user_missing_postgres_is_program_missing() -> None:
    host = FakeHost("db1").on("pgha-account", exit_code=2)
    with pytest.raises(ProgramMissing, match="no postgres user"):
        await ops.ensure_user(host, "postgres", "/var/lib/pgbackrest")


async def test_ensure_user_missing_repo_user_is_created_with_home() -> None:
    acct = "pgbackrest:x:999:999:pgBackRest:/var/lib/pgbackrest:/bin/bash\npgbackrest\n"
    host = (
        FakeHost("backup1")
        .on("pgha-account", exit_code=2, times=1)
        .on("pgha-account", acct)
        .on("useradd")
        .on("pgha-file-state /var/lib/pgbackrest follow", "absent\n")
        .on("install -d")
    )
    out, made = await ops.ensure_user(host, "pgbackrest", "/var/lib/pgbackrest")
    assert out.changed and made.home == "/var/lib/pgbackrest"
    assert host.ran("useradd --system --user-group --home-dir /var/lib/pgbackrest")
    assert host.ran("install -d -m 0750 -o pgbackrest -g pgbackrest /var/lib/pgbackrest")


def backup_host(*infos: str) -> FakeHost:
    host = FakeHost("backup1", "10.77.0.31")
    for info in infos[:-1]:
        host.on("--output=json info", info, times=1)
    return host.on("--output=json info", infos[-1])


async def test_ensure_stanza_existing_is_noop() -> None:
    host = backup_host(INFO_FULL)
    out = await ops.ensure_stanza(host, POSTGRES, "lab")
    assert not out.changed and out.summary == "stanza lab exists (ok)"
    assert not host.ran("stanza-create")


async def test_ensure_stanza_missing_creates_as_repo_user() -> None:
    host = backup_host(INFO_MISSING).on("stanza-create")
    out = await ops.ensure_stanza(host, POSTGRES, "lab")
    assert out.changed
    assert "runuser -u postgres -- pgbackrest --stanza=lab stanza-create" in host.commands


async def test_ensure_full_backup_existing_is_unchanged_with_label() -> None:
    host = backup_host(INFO_FULL)
    out, latest = await ops.ensure_full_backup(host, POSTGRES, "lab", within=60)
    assert not out.changed and latest.label == "20261126-103004F"
    assert not host.ran(" backup")


async def test_ensure_full_backup_none_takes_one() -> None:
    host = backup_host(INFO_NO_BACKUP, INFO_FULL).on("--type=full backup")
    seen: list[str] = []
    out, _ = await ops.ensure_full_backup(host, POSTGRES, "lab", within=60, progress=seen.append)
    assert out.changed and out.summary == "took full backup 20261126-103004F"
    assert seen == ["taking a full backup"]
    assert host.calls[1].timeout is not None and host.calls[1].timeout <= 60


async def test_ensure_full_backup_running_elsewhere_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ops, "POLL_S", 0.0)
    held = INFO_NO_BACKUP.replace('"held":false', '"held":true')
    host = backup_host(held, held, INFO_FULL)
    out, latest = await ops.ensure_full_backup(host, POSTGRES, "lab", within=60)
    assert not out.changed and latest.type == "full"
    assert not host.ran("--type=full backup")  # never a second backup beside the running one


async def test_ensure_full_backup_lock_lost_race_waits_instead_of_failing() -> None:
    host = backup_host(INFO_NO_BACKUP, INFO_FULL).on(
        "--type=full backup", stderr=BACKUP_LOCKED, exit_code=50
    )
    out, _ = await ops.ensure_full_backup(host, POSTGRES, "lab", within=60)
    assert not out.changed


async def test_ensure_full_backup_failure_carries_pgbackrest_lines() -> None:
    host = backup_host(INFO_NO_BACKUP).on("--type=full backup", stderr=CHECK_NO_TRUST, exit_code=27)
    with pytest.raises(ops.PgbackrestFailed, match="no database found"):
        await ops.ensure_full_backup(host, POSTGRES, "lab", within=60)
