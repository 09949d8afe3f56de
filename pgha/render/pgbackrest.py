"""Renders pgBackRest 2.45's config for the repository host and the PostgreSQL hosts. Pure: no I/O.

Layout: a dedicated repository host. The repository host runs backup and expire and reaches
each PostgreSQL host over SSH as ``postgres`` (pgN-host); each PostgreSQL host runs
archive-push/archive-get and reaches the repository (repo1-host) through pgBackRest's TLS
server there (``backup.repo_host_type: tls``, the default; certificates in
pgha/hosts/ops/pgbackrest_tls.py) or over SSH as the repository user. pgha sets up the SSH
keys both ways.

Debian's package ships /etc/pgbackrest.conf (0640 postgres:postgres) and creates
/var/lib/pgbackrest, /var/log/pgbackrest and /var/spool/pgbackrest owned by postgres, on the
repository host too (the package depends on postgresql-common, which creates the user).
"""

from __future__ import annotations

from pgha.render._common import header, host_with_role, render
from pgha.render.files import RenderedFile
from pgha.spec import ClusterSpec, RepoHostType, Role

#: Debian's path. pgBackRest reads /etc/pgbackrest/pgbackrest.conf first and this one only
#: when that does not exist; pgha writes here so the package's conffile is the live one.
PGBACKREST_CONFIG_PATH = "/etc/pgbackrest.conf"
#: The user that owns the repository and runs pgBackRest on the repository host. Debian's
#: package already gives postgres the repository, spool and log directories and the config
#: file there, so no extra user or chown is needed.
REPO_USER = "postgres"
SPOOL_PATH = "/var/spool/pgbackrest"
#: Parallel processes for backup/restore; pgBackRest advises at most a quarter of the CPUs
#: for backups, and archive-push in async mode uses them per batch of WAL.
PROCESS_MAX = 2
#: TLS files (pgha/hosts/ops/pgbackrest_tls.py makes them): the CA and the server's on the
#: repository host, the CA's and a client's on each PostgreSQL host.
TLS_DIR = "/etc/pgbackrest/tls"
CA_KEY = f"{TLS_DIR}/ca.key"
CA_CERT = f"{TLS_DIR}/ca.crt"
SERVER_KEY = f"{TLS_DIR}/server.key"
SERVER_CERT = f"{TLS_DIR}/server.crt"
CLIENT_KEY = f"{TLS_DIR}/client.key"
CLIENT_CERT = f"{TLS_DIR}/client.crt"


def _repo_host(spec: ClusterSpec) -> str:
    repos = spec.hosts_with(Role.backup_repo)
    if not spec.backup.enabled or len(repos) != 1:
        raise ValueError("pgbackrest.conf needs backup.enabled and exactly one backup-repo host")
    return str(repos[0].address)


def pgbackrest_repo_conf(spec: ClusterSpec, *, repo_user: str = REPO_USER) -> RenderedFile:
    """/etc/pgbackrest.conf on the repository host. Idempotent.

    Every PostgreSQL host is a pgN-host in spec order, so pgBackRest finds the primary
    itself after a failover (and, with ``backup.from_standby``, a standby to copy from).

    :param repo_user: the repository host's user running pgBackRest; owns the file.
    :raises ValueError: backups are disabled or there is no single backup-repo host.
    """
    _repo_host(spec)
    retention = spec.backup.retention
    content = render(
        "pgbackrest-repo.conf.j2",
        header=header(spec),
        stanza=spec.stanza,
        repo_path=spec.backup.repo_path,
        retention_full=retention.full,
        retention_diff=retention.diff,
        from_standby=spec.backup.from_standby,
        process_max=PROCESS_MAX,
        pg_hosts=[str(h.address) for h in spec.hosts_with(Role.postgres)],
        pg_path=spec.postgres.data_path,
        pg_port=spec.postgres.port,
        tls=_tls_server(spec),
    )
    return RenderedFile(
        path=PGBACKREST_CONFIG_PATH, content=content, mode=0o640, owner=repo_user, group=repo_user
    )


def _tls_server(spec: ClusterSpec) -> dict[str, str | list[str]] | None:
    """The TLS server's options, or None when the database hosts use SSH. Each database
    host's client certificate names the host (CN), and only those may use the stanza."""
    if spec.backup.repo_host_type is not RepoHostType.tls:
        return None
    return {
        "address": _repo_host(spec),
        "port": str(spec.backup.tls_port),
        "ca": CA_CERT,
        "cert": SERVER_CERT,
        "key": SERVER_KEY,
        # One line per client: pgBackRest reads "a,b=stanza" as a client named "a,b".
        "auth": [f"{h.name}={spec.stanza}" for h in spec.hosts_with(Role.postgres)],
    }


def pgbackrest_db_conf(spec: ClusterSpec, host: str, *, repo_user: str = REPO_USER) -> RenderedFile:
    """/etc/pgbackrest.conf on PostgreSQL host ``host`` (the same text on each). Idempotent.

    :param repo_user: the user pgBackRest logs in as on the repository host.
    :raises ValueError: the host has no role postgres, or backups are not configured.
    """
    host_with_role(spec, host, Role.postgres)
    content = render(
        "pgbackrest-db.conf.j2",
        header=header(spec),
        stanza=spec.stanza,
        repo_host=_repo_host(spec),
        repo_user=repo_user,
        spool_path=SPOOL_PATH,
        process_max=PROCESS_MAX,
        pg_path=spec.postgres.data_path,
        pg_port=spec.postgres.port,
        tls=(
            {"port": str(spec.backup.tls_port), "ca": CA_CERT, "cert": CLIENT_CERT,
             "key": CLIENT_KEY}
            if spec.backup.repo_host_type is RepoHostType.tls else None
        ),
    )  # fmt: skip
    return RenderedFile(
        path=PGBACKREST_CONFIG_PATH, content=content, mode=0o640, owner="postgres", group="postgres"
    )
