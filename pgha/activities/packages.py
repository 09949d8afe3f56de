"""Package activity: the Debian packages each host's roles need, with the apt proxy and
postgresql-common's main cluster turned off first. Thin wrapper over pgha.hosts.ops.
"""

from __future__ import annotations

import re

from temporalio import activity

from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import permanent, rendering, step_result
from pgha.errors import CommandFailed
from pgha.hosts.ops import package_setup
from pgha.hosts.ops.packages import ensure_packages
from pgha.spec import ClusterSpec, PackageSource, Role
from pgha.steps import HostStep, StepResult

#: apt's answers when a package or a pinned version does not exist in the configured
#: sources: retrying cannot help, the spec or the sources must change.
_MISSING = re.compile(
    r"^E: (Unable to locate package .*|Version '.*' for '.*' was not found"
    r"|Package '.*' has no installation candidate)$",
    re.M,
)


def wanted_packages(spec: ClusterSpec, host: str) -> dict[str, str | None]:
    """Package -> pinned version (None: any) for the roles of ``host``. Pure.

    The server's client package is installed with the server wherever it goes, and gets
    the server's pin unless pinned itself: both come from one source package with one
    version, and a 15.18 server next to a 15.20 client would confuse a minor upgrade.
    """
    if spec.packages.source is not PackageSource.debian:
        raise ValueError(
            f"packages.source: {spec.packages.source.value} is not supported yet (its "
            "repository is not reachable from here); use debian"
        )
    roles = spec.host(host).roles
    v = spec.postgres.version
    server, client = f"postgresql-{v}", f"postgresql-client-{v}"
    names: list[str] = []
    if Role.postgres in roles:
        names += [server, client, "patroni", "pgbackrest", "python3-psycopg2"]
    if Role.etcd in roles:
        names += ["etcd-server", "etcd-client"]
    if Role.haproxy in roles:
        names += ["haproxy", "keepalived", *(["pgbouncer"] if spec.pgbouncer.enabled else [])]
    if Role.backup_repo in roles:
        names += ["pgbackrest"]
    if Role.verify_target in roles:
        names += [server, client, "pgbackrest"]
    pins = dict(spec.packages.pins)
    if server in pins and client not in pins:
        pins[client] = pins[server]
    return {n: pins.get(n) for n in dict.fromkeys(names)}


def managed_header(spec: ClusterSpec) -> str:
    return f"Managed by pgha (cluster {spec.cluster}); changes are overwritten."


@activity.defn(name="packages.ensure_host")
async def ensure_host(step: HostStep) -> StepResult:
    """Install what the host's roles need. Idempotent: apt runs only when a package is
    missing or at another version than pinned. Before a PostgreSQL server package:
    ``create_main_cluster = false``. Heartbeats through apt (about 20 s); a retry after a
    crash repeats only what is missing, finishing an interrupted dpkg first.

    facts: ``packages`` ({name: pinned version or None}).
    :raises ApplicationError: PackageNotFound (non-retryable) when a package or pinned
        version is not in the host's apt sources; apt's lock or network trouble is retried.
    """
    spec = step.spec
    with rendering():
        wanted = wanted_packages(spec, step.host)
        header = managed_header(spec)
        package_setup.apt_proxy_conf(spec.packages.apt_proxy or "x", header)  # validates
    server = f"postgresql-{spec.postgres.version}"
    async with heartbeating(), open_host(step.target) as host:
        outcomes = [await package_setup.ensure_apt_proxy(host, spec.packages.apt_proxy, header)]
        if server in wanted:
            # Before the server package: its postinst would create and start `main`.
            outcomes.append(await package_setup.ensure_no_main_cluster(host, header))
        outcomes.append(await package_setup.finish_interrupted_dpkg(host))
        try:
            outcomes.append(await ensure_packages(host, wanted))
        except CommandFailed as err:
            missing = _MISSING.findall(err.stderr_tail)
            if not missing:
                raise  # lock, network, mirror hiccup: transient
            raise permanent(
                f"host {step.target.label}: apt cannot install what the spec asks for: "
                f"{'; '.join(missing)}. Check packages.pins and packages.source in the spec, "
                "and the host's apt sources (`apt-cache policy <package>` on the host)",
                "PackageNotFound",
            ) from None
    return step_result(step.host, outcomes, facts={"packages": wanted})
