"""Files of a restore verification's scratch instance. Pure: no I/O.

The restored copy runs with a configuration of pgha's own (``config_file``), never the
cluster's: no TCP listener (a Unix socket in the scratch directory), archive_mode off, no
primary_conninfo, no synchronous standbys, and a restore_command that can only *get* WAL.
Nothing it does can reach the cluster or push into the cluster's repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pgha.render.pgbackrest import REPO_USER
from pgha.spec import ClusterSpec, Role


@dataclass(frozen=True)
class ScratchLayout:
    """Where one cluster's verification lives on the verify host."""

    root: str
    port: int
    bin_dir: str

    @property
    def data(self) -> str:
        return f"{self.root}/data"

    @property
    def run(self) -> str:
        """The socket directory (the instance's only listener)."""
        return f"{self.root}/run"

    @property
    def log(self) -> str:
        return f"{self.root}/log"

    @property
    def pgbackrest_conf(self) -> str:
        return f"{self.root}/pgbackrest.conf"

    @property
    def postgres_conf(self) -> str:
        return f"{self.root}/postgresql.verify.conf"

    @property
    def hba_conf(self) -> str:
        return f"{self.root}/pg_hba.verify.conf"

    @property
    def ident_conf(self) -> str:
        return f"{self.root}/pg_ident.verify.conf"

    @property
    def server_log(self) -> str:
        return f"{self.log}/postgresql.log"


def scratch_layout(spec: ClusterSpec) -> ScratchLayout:
    verify = spec.backup.verify
    return ScratchLayout(
        root=f"{verify.scratch_path.rstrip('/')}/{spec.cluster}",
        port=verify.port,
        bin_dir=f"/usr/lib/postgresql/{spec.postgres.version}/bin",
    )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def verify_pgbackrest_conf(spec: ClusterSpec, layout: ScratchLayout, host: str) -> str:
    """pgBackRest's config for the restore and the restored copy's archive-get on verify
    host ``host``: the cluster's repository (its path on the repository host itself, over
    SSH from a verify host of its own), the scratch data directory as pg1-path. Logs,
    spool and locks stay inside the scratch directory."""
    repos = spec.hosts_with(Role.backup_repo)
    if len(repos) != 1:
        raise ValueError("restore verification needs exactly one backup-repo host")
    repo = repos[0]
    where = (
        f"repo1-path={spec.backup.repo_path}\n"
        if repo.name == host
        else f"repo1-host={repo.address}\nrepo1-host-user={REPO_USER}\n"
    )
    return (
        f"# pgha restore verification of cluster {spec.cluster}; removed with the scratch copy.\n"
        "[global]\n"
        f"{where}"
        f"log-path={layout.log}\n"
        f"spool-path={layout.root}/spool\n"
        f"lock-path={layout.root}/lock\n"
        "log-level-console=info\n"
        "log-level-file=off\n"
        "process-max=2\n"
        "archive-async=n\n"
        "\n"
        f"[{spec.stanza}]\n"
        f"pg1-path={layout.data}\n"
        f"pg1-port={layout.port}\n"
        f"pg1-socket-path={layout.run}\n"
    )


@dataclass(frozen=True)
class RecoveryTarget:
    """Where recovery stops: the sentinel's transaction (inclusive) or a point in time."""

    xid: int | None = None
    time: datetime | None = None

    def settings(self) -> dict[str, str]:
        if self.xid is not None:
            return {"recovery_target_xid": str(self.xid), "recovery_target_inclusive": "on"}
        if self.time is not None:
            return {
                "recovery_target_time": self.time.isoformat(),
                "recovery_target_inclusive": "on",
            }
        return {}


def verify_postgres_conf(spec: ClusterSpec, layout: ScratchLayout, target: RecoveryTarget) -> str:
    """The restored copy's whole configuration (it replaces the cluster's)."""
    restore_command = (
        f'pgbackrest --config={layout.pgbackrest_conf} --stanza={spec.stanza} archive-get %f "%p"'
    )
    settings: dict[str, str] = {
        "port": str(layout.port),
        "listen_addresses": "",
        "unix_socket_directories": layout.run,
        "hba_file": layout.hba_conf,
        "ident_file": layout.ident_conf,
        "archive_mode": "off",
        "archive_command": "",
        "primary_conninfo": "",
        "primary_slot_name": "",
        "synchronous_standby_names": "",
        "shared_preload_libraries": "",
        # Replays WAL without serving reads, so the primary's max_connections and friends
        # need not be matched; promoted at the target, it accepts connections.
        "hot_standby": "off",
        "restore_command": restore_command,
        "recovery_target_action": "promote",
        "recovery_target_timeline": "latest",
        "max_connections": "20",
        "max_wal_senders": "0",
        "shared_buffers": "128MB",
        "autovacuum": "off",
        "jit": "off",
        "logging_collector": "off",
        "log_line_prefix": "%m [%p] ",
        **target.settings(),
    }
    lines = [f"# pgha restore verification of cluster {spec.cluster}: isolated scratch copy."]
    lines += [f"{k} = {_quote(v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def verify_hba_conf() -> str:
    """Only the postgres OS user, over the scratch socket."""
    return "# pgha restore verification: no network access at all.\nlocal all postgres peer\n"
