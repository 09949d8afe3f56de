"""HAProxy activity: converge haproxy.cfg and the service on one proxy host. Thin: the work
is in pgha.hosts.ops.haproxy; no secret is needed here.

Also :func:`require_host`, :func:`require_role` and :data:`PERMANENT`, which the
keepalived, pgbouncer and pgBackRest activities share.
"""

from __future__ import annotations

from temporalio import activity

from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import step_result, translated
from pgha.errors import SettingsError
from pgha.hosts.facts.haproxy import ProgramMissing
from pgha.hosts.ops.haproxy import ConfigRejected, ServiceFailed, ensure_haproxy
from pgha.render import haproxy_cfg
from pgha.spec import HostSpec, Role
from pgha.steps import HostStep, StepResult

#: Errors of the proxy ops that a retry cannot fix: the same spec and host fail the same
#: way until an operator acts (a bad setting, a port taken, a package missing).
PERMANENT: tuple[type[Exception], ...] = (
    ConfigRejected,
    ServiceFailed,
    ProgramMissing,
    SettingsError,
)


def require_host(inp: HostStep) -> HostSpec:
    """The step's host.

    :raises ValueError: it is not in the spec (a workflow bug; ``translated`` makes it
        non-retryable).
    """
    try:
        return inp.spec.host(inp.host)
    except KeyError:
        raise ValueError(f"host {inp.host!r} is not in cluster {inp.spec.cluster!r}") from None


def require_role(inp: HostStep, role: Role) -> HostSpec:
    """The step's host, which must have ``role`` (the workflow picks hosts by role).

    :raises ValueError: it is not in the spec or lacks the role.
    """
    host = require_host(inp)
    if role not in host.roles:
        raise ValueError(f"host {host.name} ({host.address}) does not have role {role.value}")
    return host


@activity.defn(name="haproxy.ensure_config")
async def ensure_config(inp: HostStep) -> StepResult:
    """haproxy.cfg as rendered, validated by `haproxy -c` on the host before it replaces the
    live file (a rejected file leaves the running one alone: non-retryable ConfigRejected
    with haproxy's words); HAProxy enabled and running; reloaded (hitless), never
    restarted, when the file changed. Idempotent.

    Facts: ``config_sha256`` of the file in place, ``ports`` it serves.
    """
    spec = inp.spec
    ports = [spec.haproxy.rw_port, spec.haproxy.ro_port, spec.haproxy.stats_port]
    async with translated(*PERMANENT):
        require_role(inp, Role.haproxy)
        config = haproxy_cfg(spec)
        async with heartbeating(), open_host(inp.target) as host:
            outcome = await ensure_haproxy(host, config, ports)
    return step_result(inp.host, [outcome], facts={"config_sha256": config.sha256, "ports": ports})
