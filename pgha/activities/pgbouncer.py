"""pgbouncer activity: converge the pooler on one proxy host when the spec enables it. Thin:
the files come from pgha.render.pgbouncer, the service handling from the proxy ops. The
auth_user's password is resolved here and travels to the host on stdin only.
"""

from __future__ import annotations

import posixpath

from temporalio import activity

from pgha.activities.cluster_secrets import render_secrets
from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import step_result, translated
from pgha.activities.haproxy import PERMANENT, require_role
from pgha.hosts.ops.files import ensure_directory
from pgha.hosts.ops.haproxy import ensure_service, ensure_service_file
from pgha.hosts.result import Outcome
from pgha.render import pgbouncer_ini, pgbouncer_systemd_dropin, pgbouncer_userlist
from pgha.spec import Role
from pgha.steps import HostStep, StepResult

UNIT = "pgbouncer"


@activity.defn(name="pgbouncer.ensure_config")
async def ensure_config(inp: HostStep) -> StepResult:
    """pgbouncer.ini, its auth file and the unit's open-file drop-in as rendered; pgbouncer
    enabled, running and listening. Idempotent.

    A changed ini or auth file is applied by a reload (SIGHUP: clients stay connected); a
    changed drop-in needs a restart (the open-file limit is set when the process starts),
    which happens on the first provision only: Debian's package starts pgbouncer with its
    own config and the default limit. With ``pgbouncer.enabled: false`` nothing is done.

    Facts: ``enabled``, ``port``.
    """
    spec = inp.spec
    if not spec.pgbouncer.enabled:
        why = Outcome.unchanged("pgbouncer is disabled in the spec: nothing to do")
        return step_result(inp.host, [why], facts={"enabled": False})
    async with translated(*PERMANENT):
        require_role(inp, Role.haproxy)
        secrets = render_secrets(spec, "pgbouncer_auth")
        ini, users = pgbouncer_ini(spec), pgbouncer_userlist(spec, secrets)
        dropin = pgbouncer_systemd_dropin(spec)
        async with heartbeating(), open_host(inp.target) as host:
            # The drop-in first: a restart it calls for also applies the other two files.
            done = [
                await ensure_directory(host, posixpath.dirname(dropin.path)),
                await ensure_service_file(host, dropin, unit=UNIT, apply="restart"),
            ]
            for f in (ini, users):
                done.append(await ensure_service_file(host, f, unit=UNIT))
            done.append(
                await ensure_service(host, UNIT, ports=[spec.pgbouncer.port], program="pgbouncer")
            )
    return step_result(inp.host, done, facts={"enabled": True, "port": spec.pgbouncer.port})
