"""Renders pgbouncer 1.18's config and auth file for the proxy hosts. Pure: no I/O.

Placement: pgbouncer runs on each HAProxy host and sends every server connection to the
local HAProxy read-write port (127.0.0.1:<rw_port>). Clients use VIP:<pgbouncer port>, so
the pool moves with the VIP, and after a failover HAProxy (not pgbouncer, which cannot tell
a primary from a replica) finds the new primary. On the database hosts a pooler would
need to follow the leader itself, and the bare-minimum layout (no proxies) has no stable
address for it: there pgbouncer is refused.

Debian's pgbouncer.service runs ``pgbouncer /etc/pgbouncer/pgbouncer.ini`` as postgres
(Type=notify; SIGHUP reloads) and the package makes both files 0640 postgres:postgres.
"""

from __future__ import annotations

from pgha.render._common import header, render
from pgha.render.files import RenderedFile
from pgha.render.postgres import PGBOUNCER_AUTH_USER, dcs_parameters
from pgha.render.secrets import RenderSecrets
from pgha.spec import ClusterSpec, Role

PGBOUNCER_INI_PATH = "/etc/pgbouncer/pgbouncer.ini"
PGBOUNCER_USERLIST_PATH = "/etc/pgbouncer/userlist.txt"
PGBOUNCER_DROPIN_PATH = "/etc/systemd/system/pgbouncer.service.d/pgha.conf"
#: Schema holding the SECURITY DEFINER lookup function auth_query calls.
AUTH_SCHEMA = "pgbouncer"
AUTH_QUERY = f"SELECT usename, passwd FROM {AUTH_SCHEMA}.get_auth($1)"


def _check_layout(spec: ClusterSpec) -> None:
    if not spec.hosts_with(Role.haproxy):
        raise ValueError(
            "pgbouncer runs on the HAProxy hosts behind the VIP; the spec has none "
            "(bare-minimum layout): set pgbouncer.enabled: false"
        )


def pgbouncer_ini(spec: ClusterSpec) -> RenderedFile:
    """/etc/pgbouncer/pgbouncer.ini, the same on every proxy. Idempotent.

    :raises ValueError: the spec has no HAProxy hosts.
    """
    _check_layout(spec)
    p = spec.pgbouncer
    content = render(
        "pgbouncer.ini.j2",
        header=header(spec, ";"),
        rw_port=spec.haproxy.rw_port,
        port=p.port,
        pool_mode=p.pool_mode,
        default_pool_size=p.default_pool_size,
        max_client_conn=p.max_client_conn,
        auth_user=PGBOUNCER_AUTH_USER,
        auth_query=AUTH_QUERY,
        auth_file=PGBOUNCER_USERLIST_PATH,
    )
    return RenderedFile(
        path=PGBOUNCER_INI_PATH, content=content, mode=0o640, owner="postgres", group="postgres"
    )


def pgbouncer_open_files(spec: ClusterSpec) -> int:
    """File descriptors pgbouncer may need: one per client, one per server connection (never
    more than PostgreSQL's max_connections), and some slack; at least 4096."""
    max_connections = int(dcs_parameters(spec)["max_connections"])
    return max(4096, spec.pgbouncer.max_client_conn + max_connections + 128)


def pgbouncer_systemd_dropin(spec: ClusterSpec) -> RenderedFile:
    """A drop-in raising pgbouncer.service's open-file limit. Idempotent.

    Debian's unit keeps systemd's default soft limit of 1024 and pgbouncer does not raise
    it, so the default max_client_conn of 1000 plus server connections would run out of
    descriptors (pgbouncer 1.18 logs "kernel file descriptor limit: 1024"). The value must
    stay under the host's hard limit (20000 in lab containers), or the unit fails to start.
    The caller runs ``systemctl daemon-reload`` when the file changes.

    :raises ValueError: the spec has no HAProxy hosts.
    """
    _check_layout(spec)
    content = (
        f"{header(spec)}\n"
        "# Clients + server connections (at most max_connections) + slack.\n"
        "[Service]\n"
        f"LimitNOFILE={pgbouncer_open_files(spec)}\n"
    )
    return RenderedFile(path=PGBOUNCER_DROPIN_PATH, content=content, mode=0o644)


def _auth_field(value: str) -> str:
    # auth_file format: a field in double quotes; a quote inside is written twice.
    return '"' + value.replace('"', '""') + '"'


def pgbouncer_userlist(spec: ClusterSpec, secrets: RenderSecrets) -> RenderedFile:
    """/etc/pgbouncer/userlist.txt: only the auth_user, with its plain password.

    The plain text (not a SCRAM secret) is needed because pgbouncer itself logs in to
    PostgreSQL as auth_user with SCRAM; every other user is looked up by auth_query.
    Needs secret pgbouncer_auth.

    :raises ValueError: the spec has no HAProxy hosts.
    :raises MissingSecretError: pgbouncer_auth was not resolved.
    """
    _check_layout(spec)
    password = secrets.need("pgbouncer_auth")
    content = f"{header(spec, ';')}\n{_auth_field(PGBOUNCER_AUTH_USER)} {_auth_field(password)}\n"
    return RenderedFile(
        path=PGBOUNCER_USERLIST_PATH,
        content=content,
        mode=0o640,
        owner="postgres",
        group="postgres",
    )


def pgbouncer_auth_sql() -> str:
    """SQL that gives auth_user its lookup function, run in every database clients reach
    through pgbouncer (1.18 runs auth_query in the client's database; auth_dbname is 1.19+).

    Idempotent (CREATE ... IF NOT EXISTS / OR REPLACE). The role itself (LOGIN, password)
    is created with the other roles. Superusers are never returned, so pgbouncer cannot be
    used to log in as one.
    """
    s, u = AUTH_SCHEMA, PGBOUNCER_AUTH_USER
    return (
        # Owned by the superuser running this, not by auth_user: a schema owner may drop
        # (and so replace) the function.
        f"CREATE SCHEMA IF NOT EXISTS {s};\n"
        f"REVOKE ALL ON SCHEMA {s} FROM PUBLIC;\n"
        f"GRANT USAGE ON SCHEMA {s} TO {u};\n"
        f"CREATE OR REPLACE FUNCTION {s}.get_auth(p_usename text)\n"
        "RETURNS TABLE(usename name, passwd text)\n"
        "LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$\n"
        "  SELECT a.rolname, a.rolpassword FROM pg_catalog.pg_authid a\n"
        "  WHERE a.rolname = p_usename AND a.rolcanlogin AND NOT a.rolsuper\n"
        "    AND (a.rolvaliduntil IS NULL OR a.rolvaliduntil > pg_catalog.now());\n"
        "$$;\n"
        f"REVOKE ALL ON FUNCTION {s}.get_auth(text) FROM PUBLIC;\n"
        f"GRANT EXECUTE ON FUNCTION {s}.get_auth(text) TO {u};\n"
    )
