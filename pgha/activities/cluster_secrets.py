"""Resolves a cluster's own credentials on the worker, for renderers and SQL. Never in workflows.

Each credential comes from the spec's ``secrets:`` reference, or by default from pgha's
secret store under ``<cluster>-<name>``, generated on first use: passwords are created
once and then reused by every later run, on every host.
"""

from __future__ import annotations

from pydantic import SecretStr

from pgha import secrets
from pgha.models import SecretRef
from pgha.render.secrets import KEEPALIVED_PASS_MAX, RenderSecrets
from pgha.spec import ClusterSpec

#: Credentials pgha sets itself, so it may generate them.
NAMES = ("superuser", "replication", "rewind", "patroni_restapi", "pgbouncer_auth",
         "keepalived_auth")  # fmt: skip


def secret_ref(spec: ClusterSpec, name: str) -> SecretRef:
    """The spec's reference for credential ``name``, or the default store entry."""
    ref = getattr(spec.secrets, name, None)
    if isinstance(ref, SecretRef):
        return ref
    return SecretRef(secret=f"{spec.cluster}-{name.replace('_', '-')}")


def resolve_one(spec: ClusterSpec, name: str) -> SecretStr:
    value = secrets.resolve(secret_ref(spec, name), generate=True)
    if name == "keepalived_auth":
        # VRRP PASS authentication keeps 8 characters; the store's values are URL-safe.
        return SecretStr(value.get_secret_value()[:KEEPALIVED_PASS_MAX])
    return value


def render_secrets(spec: ClusterSpec, *names: str) -> RenderSecrets:
    """Resolve just the named credentials (all of them when none are named)."""
    wanted = names or NAMES
    return RenderSecrets(**{n: resolve_one(spec, n) for n in wanted})
