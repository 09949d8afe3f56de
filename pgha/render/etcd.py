"""Renders etcd's environment file for Debian's etcd-server 3.4. Pure: no I/O.

Debian's etcd.service sets ``ETCD_NAME=%H`` and ``ETCD_DATA_DIR=/var/lib/etcd/default``,
then reads ``EnvironmentFile=-/etc/default/etcd`` (which overrides both), runs as user
``etcd`` and is started by the package's postinst right after installation.
"""

from __future__ import annotations

from typing import Literal

from pgha.render._common import header, host_with_role, render
from pgha.render.files import RenderedFile
from pgha.spec import ClusterSpec, Role

ETCD_ENV_PATH = "/etc/default/etcd"

InitialClusterState = Literal["new", "existing"]


def etcd_data_dir(spec: ClusterSpec) -> str:
    """The member's data directory: one per cluster, never Debian's ``default``.

    The package starts a throw-away single-member etcd on install, which initialises
    /var/lib/etcd/default. A member whose data dir is already initialised ignores every
    ETCD_INITIAL_* setting and comes back as that lone cluster, so the real member must
    start from a directory nobody has used.
    """
    return f"/var/lib/etcd/pgha-{spec.cluster}"


def etcd_client_urls(spec: ClusterSpec) -> list[str]:
    """The client URLs of every member, in spec order (for etcdctl --endpoints)."""
    port = spec.etcd.client_port
    return [f"http://{h.address}:{port}" for h in spec.hosts_with(Role.etcd)]


def etcd_initial_cluster(spec: ClusterSpec) -> str:
    """``name=peer-url,...`` for every etcd member in spec order."""
    port = spec.etcd.peer_port
    return ",".join(f"{h.name}=http://{h.address}:{port}" for h in spec.hosts_with(Role.etcd))


def etcd_env(
    spec: ClusterSpec,
    host: str,
    *,
    token: str,
    state: InitialClusterState = "new",
) -> RenderedFile:
    """/etc/default/etcd for member ``host``. Idempotent: the same inputs give the same bytes.

    :param host: name of a host with role etcd.
    :param token: the cluster's initial-cluster token, made once per cluster and kept, so
        two clusters on one network never merge; it is not a secret.
    :param state: ``new`` when bootstrapping the whole cluster, ``existing`` for a member
        added to a running cluster (after ``etcdctl member add``). etcd reads the
        ETCD_INITIAL_* values only when its data directory is empty.
    :raises ValueError: the host is not an etcd member, or the token is empty or unsafe
        for an environment file.
    """
    me = host_with_role(spec, host, Role.etcd)
    if not token or not token.replace("-", "").replace("_", "").isalnum():
        raise ValueError("etcd token must be non-empty letters, digits, '-' or '_'")
    addr = str(me.address)
    content = render(
        "etcd.env.j2",
        header=header(spec),
        name=me.name,
        data_dir=etcd_data_dir(spec),
        peer_url=f"http://{addr}:{spec.etcd.peer_port}",
        client_url=f"http://{addr}:{spec.etcd.client_port}",
        local_client_url=f"http://127.0.0.1:{spec.etcd.client_port}",
        initial_cluster=etcd_initial_cluster(spec),
        token=token,
        state=state,
    )
    return RenderedFile(path=ETCD_ENV_PATH, content=content, mode=0o644)
