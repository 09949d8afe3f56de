"""Renders Patroni's config for Debian's patroni 3.0.2 package. Pure: no I/O.

Debian's patroni.service runs ``/usr/bin/patroni /etc/patroni/config.yml`` as postgres:postgres
(ConditionPathExists on that file), reloads on SIGHUP, and stops only the patroni process
(KillMode=process) so PostgreSQL is shut down by Patroni itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

from pgha.render import postgres as pg
from pgha.render._common import header, host_with_role, render
from pgha.render.files import RenderedFile
from pgha.render.secrets import RenderSecrets
from pgha.spec import ClusterSpec, Role

PATRONI_CONFIG_PATH = "/etc/patroni/config.yml"
PATRONI_NAMESPACE = "/pgha/"
WATCHDOG_DEVICE = "/dev/watchdog"
#: Seconds before the leader key expires that the watchdog fires (Patroni's default).
WATCHDOG_SAFETY_MARGIN = 5
POSTMASTER_WATCH_UNIT = "pgha-postmaster-watch.service"
POSTMASTER_WATCH_UNIT_PATH = f"/etc/systemd/system/{POSTMASTER_WATCH_UNIT}"
POSTMASTER_WATCH_SCRIPT_PATH = "/usr/local/lib/pgha/postmaster-watch.py"


def bin_dir(spec: ClusterSpec) -> str:
    return f"/usr/lib/postgresql/{spec.postgres.version}/bin"


def pgpass_path(spec: ClusterSpec) -> str:
    """Patroni rewrites this file itself; keep it away from the postgres user's ~/.pgpass."""
    return f"/var/lib/postgresql/patroni-{spec.cluster}.pgpass"


def dynamic_config(spec: ClusterSpec) -> dict[str, Any]:
    """The cluster-wide part of Patroni's config, as stored in the DCS.

    Written as ``bootstrap.dcs`` (used once, when the cluster is initialised); afterwards
    the same dict is what reconfigure compares with ``GET /config`` and sends with
    ``PATCH /config``. Idempotent.
    """
    p = spec.patroni
    return {
        "ttl": p.ttl,
        "loop_wait": p.loop_wait,
        "retry_timeout": p.retry_timeout,
        "maximum_lag_on_failover": p.maximum_lag_on_failover,
        "synchronous_mode": p.synchronous_mode,
        "synchronous_mode_strict": p.synchronous_mode_strict,
        # Keep the primary running while etcd is unreachable, as long as it can still
        # reach every other member through their REST APIs.
        "failsafe_mode": True,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": pg.dcs_parameters(spec),
        },
    }


def patroni_config(
    spec: ClusterSpec,
    host: str,
    secrets: RenderSecrets,
    *,
    client_networks: Sequence[str] = (),
    drained: bool = False,
) -> RenderedFile:
    """/etc/patroni/config.yml for PostgreSQL host ``host``. Idempotent.

    Needs secrets superuser, replication, rewind and patroni_restapi. The file holds them,
    so it is 0600 postgres:postgres.

    :param client_networks: extra networks allowed in pg_hba (see :func:`pg.hba_rules`).
    :param drained: tag the member nofailover and noloadbalance, as a rolling operation
        does while it works on it: Patroni neither promotes it nor reports it as a
        replica to HAProxy's read-only check.
    :raises ValueError: the host has no role postgres, or the spec sets a parameter
        Patroni owns.
    :raises MissingSecretError: a needed secret was not resolved.
    """
    me = host_with_role(spec, host, Role.postgres)
    addr = str(me.address)
    port = spec.postgres.port
    api = f"{addr}:{spec.patroni.restapi_port}"
    content = render(
        "patroni.yml.j2",
        header=header(spec),
        scope=spec.cluster,
        namespace=PATRONI_NAMESPACE,
        name=me.name,
        restapi_listen=api,
        restapi_user=pg.RESTAPI_USER,
        restapi_password=secrets.need("patroni_restapi"),
        etcd_hosts=[f"{h.address}:{spec.etcd.client_port}" for h in spec.hosts_with(Role.etcd)],
        dcs=dynamic_config(spec),
        initdb_locale="C.UTF-8",
        listen=f"{addr},127.0.0.1:{port}",
        connect_address=f"{addr}:{port}",
        data_dir=spec.postgres.data_path,
        bin_dir=bin_dir(spec),
        pgpass=pgpass_path(spec),
        superuser=pg.SUPERUSER,
        superuser_password=secrets.need("superuser"),
        replication_user=pg.REPLICATION_USER,
        replication_password=secrets.need("replication"),
        rewind_user=pg.REWIND_USER,
        rewind_password=secrets.need("rewind"),
        parameters=pg.local_parameters(spec),
        restore_command=pg.restore_command(spec) if spec.backup.enabled else None,
        pg_hba=pg.hba_rules(
            spec, client_networks or [str(n) for n in spec.postgres.client_networks]
        ),
        watchdog_mode=spec.watchdog.value,
        watchdog_device=WATCHDOG_DEVICE,
        watchdog_safety_margin=WATCHDOG_SAFETY_MARGIN,
        drained=drained,
    )
    return RenderedFile(
        path=PATRONI_CONFIG_PATH, content=content, mode=0o600, owner="postgres", group="postgres"
    )


def postmaster_watch_files(spec: ClusterSpec) -> tuple[RenderedFile, RenderedFile]:
    """The watcher that wakes Patroni when the postmaster exits: its script and its unit.

    The script is pgha/hosts/remote/postmaster_watch.py as is, under pgha's header; it
    reads everything else from Patroni's config, so it is the same on every member.
    """
    source = (resources.files("pgha.hosts") / "remote" / "postmaster_watch.py").read_text()
    script = RenderedFile(
        path=POSTMASTER_WATCH_SCRIPT_PATH, content=f"{header(spec)}\n{source}", mode=0o644
    )
    unit = render(
        "pgha-postmaster-watch.service.j2",
        header=header(spec),
        script=POSTMASTER_WATCH_SCRIPT_PATH,
        patroni_config=PATRONI_CONFIG_PATH,
    )
    return script, RenderedFile(path=POSTMASTER_WATCH_UNIT_PATH, content=unit, mode=0o644)
