"""PostgreSQL settings pgha derives from the spec: parameters, pg_hba rules, role names and
connection strings. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import quote

from pgha.models import Model
from pgha.spec import ClusterSpec, Role

#: Role names pgha creates through Patroni (fixed until the spec has settings for them).
SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
REWIND_USER = "rewind"
RESTAPI_USER = "patroni"
PGBOUNCER_AUTH_USER = "pgbouncer_auth"

#: Parameters Patroni sets itself (from ``postgresql.listen`` and ``scope``); a value in the
#: spec would be silently ignored, so it is refused instead.
PATRONI_OWNED = frozenset({"listen_addresses", "port", "cluster_name", "hba_file", "ident_file"})

#: Parameters Patroni 3.0 accepts only from the DCS (bootstrap.dcs / PATCH /config) and
#: silently drops from a node's own config file (ConfigHandler.CMDLINE_OPTIONS): they must
#: be equal on every member, or a replica refuses to start.
DCS_ONLY = frozenset(
    {
        "hot_standby",
        "max_connections",
        "max_locks_per_transaction",
        "max_prepared_transactions",
        "max_replication_slots",
        "max_wal_senders",
        "max_worker_processes",
        "track_commit_timestamp",
        "wal_keep_segments",
        "wal_keep_size",
        "wal_level",
        "wal_log_hints",
    }
)

#: Recovery settings Patroni manages itself for every replica.
RECOVERY_OWNED = frozenset({"primary_conninfo", "primary_slot_name", "restore_command"})

ParamValue = str | int | float

_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _value(value: str | int | float | bool) -> ParamValue:
    # YAML booleans would reach postgresql.conf as True/False; PostgreSQL wants on/off.
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


def dcs_parameters(spec: ClusterSpec) -> dict[str, ParamValue]:
    """Cluster-wide parameters for Patroni's DCS config, spec values over pgha's defaults.

    Sorted by name, so the rendered text and checksums are stable.
    """
    defaults: dict[str, ParamValue] = {
        "hot_standby": "on",
        "max_connections": 100,
        "max_replication_slots": 10,
        "max_wal_senders": 10,
        "max_worker_processes": 8,
        "wal_keep_size": "128MB",
        "wal_level": "replica",
        # pg_rewind needs hint bits WAL-logged (checksums do it too; both is harmless).
        "wal_log_hints": "on",
    }
    given = {k: _value(v) for k, v in spec.postgres.parameters.items() if k in DCS_ONLY}
    merged = defaults | given
    return {k: merged[k] for k in sorted(merged)}


def archive_command(spec: ClusterSpec) -> str:
    return f"pgbackrest --stanza={spec.stanza} archive-push %p"


def restore_command(spec: ClusterSpec) -> str:
    return f'pgbackrest --stanza={spec.stanza} archive-get %f "%p"'


#: Debian's place for server logs; pgha's log_filename names the version and the cluster.
LOG_DIRECTORY = "/var/log/postgresql"


def log_filename(version: int | str, cluster: str) -> str:
    return f"postgresql-{version}-{cluster}.log"


def local_parameters(spec: ClusterSpec) -> dict[str, ParamValue]:
    """Parameters for each node's own Patroni config (re-read on reload), spec over defaults.

    :raises ValueError: the spec sets a parameter Patroni owns (listen_addresses, port...)
        or a recovery setting Patroni writes itself.
    """
    bad_names = sorted(k for k in spec.postgres.parameters if not _PARAM_NAME.match(k))
    if bad_names:
        raise ValueError(f"postgres.parameters: {', '.join(bad_names)} are not parameter names")
    refused = sorted(k for k in spec.postgres.parameters if k in PATRONI_OWNED | RECOVERY_OWNED)
    if refused:
        raise ValueError(
            f"postgres.parameters: {', '.join(refused)} are set by pgha through Patroni "
            "(postgres.port, the host address, the backup settings); remove them"
        )
    version = spec.postgres.version
    defaults: dict[str, ParamValue] = {
        "password_encryption": "scram-sha-256",
        "unix_socket_directories": "/var/run/postgresql",
        # Debian's layout: postgresql-common's logrotate rotates /var/log/postgresql/*.log.
        "logging_collector": "on",
        "log_directory": LOG_DIRECTORY,
        "log_filename": log_filename(version, spec.cluster),
        "log_line_prefix": "%m [%p] %q%u@%d ",
    }
    if spec.backup.enabled:
        defaults |= {"archive_mode": "on", "archive_command": archive_command(spec)}
    given = {k: _value(v) for k, v in spec.postgres.parameters.items() if k not in DCS_ONLY}
    merged = defaults | given
    return {k: merged[k] for k in sorted(merged)}


def hba_rules(spec: ClusterSpec, client_networks: Sequence[str] = ()) -> list[str]:
    """pg_hba.conf lines, first match wins. Idempotent and ordered as the spec's hosts.

    - the OS user postgres by peer (Patroni's own connection, pgBackRest, pgha's local psql);
    - replication only from PostgreSQL hosts, as the replication user;
    - other connections from the cluster's PostgreSQL and HAProxy hosts (HAProxy is plain
      TCP, so PostgreSQL sees a proxy's address for every client behind the VIP), from
      loopback, and from ``client_networks`` (the applications of the bare-minimum layout,
      which connect directly);
    - everything else is rejected (no line matches).

    :param client_networks: extra networks (``10.1.0.0/16``) allowed to connect; passed by
        the caller until the spec has a setting for them.
    :raises ValueError: a client network is not an IPv4/IPv6 network.
    """
    method = "scram-sha-256"
    db_hosts = [f"{h.address}/32" for h in spec.hosts_with(Role.postgres)]
    proxies = [f"{h.address}/32" for h in spec.hosts_with(Role.haproxy)]
    clients = [str(ipaddress.ip_network(n, strict=True)) for n in client_networks]
    rules = [f"local all {SUPERUSER} peer"]
    rules += [f"host replication {REPLICATION_USER} {a} {method}" for a in db_hosts]
    # Patroni 3.0 replicas open a replication connection to localhost on every REST status
    # request (HAProxy checks them every second): without this line the log fills with
    # rejected connections.
    rules.append(f"host replication {REPLICATION_USER} 127.0.0.1/32 {method}")
    rules.append(f"host all all 127.0.0.1/32 {method}")
    rules += [f"host all all {a} {method}" for a in [*db_hosts, *proxies, *clients]]
    return rules


class ConnectionStrings(Model):
    """Where applications connect; printed by the CLI after provisioning."""

    read_write: str
    read_only: str
    #: Through pgbouncer, when enabled (read-write, pooled).
    pooled: str | None = None


def connection_strings(
    spec: ClusterSpec, *, database: str = "postgres", user: str | None = None
) -> ConnectionStrings:
    """libpq URIs for the cluster. Holds no password.

    With proxies: the VIP's read-write and read-only HAProxy ports (and pgbouncer's port).
    Bare-minimum layout (no proxies): every PostgreSQL host in one multi-host URI; libpq
    tries them in order and keeps the one that accepts writes (``target_session_attrs``,
    libpq 10+) or, for reads, prefers a standby (``prefer-standby``, libpq 14+).
    """
    who = f"{quote(user, safe='')}@" if user else ""
    db = quote(database, safe="")
    if spec.vip is not None and spec.hosts_with(Role.haproxy):
        vip = spec.vip.address.ip
        h = spec.haproxy
        pooled = (
            f"postgresql://{who}{vip}:{spec.pgbouncer.port}/{db}"
            if spec.pgbouncer.enabled
            else None
        )
        return ConnectionStrings(
            read_write=f"postgresql://{who}{vip}:{h.rw_port}/{db}",
            read_only=f"postgresql://{who}{vip}:{h.ro_port}/{db}",
            pooled=pooled,
        )
    hosts = ",".join(f"{h.address}:{spec.postgres.port}" for h in spec.hosts_with(Role.postgres))
    base = f"postgresql://{who}{hosts}/{db}"
    return ConnectionStrings(
        read_write=f"{base}?target_session_attrs=read-write",
        read_only=f"{base}?target_session_attrs=prefer-standby",
    )
