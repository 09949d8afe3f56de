"""Pure rendering: cluster spec (+ resolved secrets) -> config file text. No I/O, no Temporal.

Each component has its module; this package re-exports the functions activities call.
Every renderer is deterministic (spec order, sorted parameters, no timestamps), so an
activity compares ``RenderedFile.sha256`` with the host's file and writes only on change.

``drill_timeline`` (a drill report -> its PNG picture) is not re-exported: workflows import
this package, and it loads matplotlib.
"""

from __future__ import annotations

from pgha.render.etcd import etcd_client_urls, etcd_data_dir, etcd_env, etcd_initial_cluster
from pgha.render.files import RenderedFile
from pgha.render.haproxy import haproxy_cfg
from pgha.render.keepalived import keepalived_check_script, keepalived_conf
from pgha.render.patroni import dynamic_config, patroni_config, postmaster_watch_files
from pgha.render.pgbackrest import pgbackrest_db_conf, pgbackrest_repo_conf
from pgha.render.pgbouncer import (
    pgbouncer_auth_sql,
    pgbouncer_ini,
    pgbouncer_systemd_dropin,
    pgbouncer_userlist,
)
from pgha.render.postgres import ConnectionStrings, connection_strings, hba_rules
from pgha.render.secrets import MissingSecretError, RenderSecrets

__all__ = [
    "ConnectionStrings",
    "MissingSecretError",
    "RenderSecrets",
    "RenderedFile",
    "connection_strings",
    "dynamic_config",
    "etcd_client_urls",
    "etcd_data_dir",
    "etcd_env",
    "etcd_initial_cluster",
    "haproxy_cfg",
    "hba_rules",
    "keepalived_check_script",
    "keepalived_conf",
    "patroni_config",
    "pgbackrest_db_conf",
    "pgbackrest_repo_conf",
    "pgbouncer_auth_sql",
    "pgbouncer_ini",
    "pgbouncer_systemd_dropin",
    "pgbouncer_userlist",
    "postmaster_watch_files",
]
