"""Shared rendering helpers: the jinja2 environment, the header, value quoting, host lookups.

Pure: no I/O beyond jinja2 reading the packaged templates.
"""

from __future__ import annotations

import json
from typing import Any

import jinja2

from pgha.spec import ClusterSpec, HostSpec, Role

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("pgha.render", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def header(spec: ClusterSpec, comment: str = "#") -> str:
    """The first line of every file pgha writes."""
    return f"{comment} Managed by pgha (cluster {spec.cluster}); changes are overwritten."


def yaml_scalar(value: object) -> str:
    """A YAML scalar for ``value``: strings always double-quoted (JSON strings are valid
    YAML), so a password like ``no``, ``0755`` or ``a: b`` keeps its type and text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


_ENV.filters["yaml"] = yaml_scalar


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>``; every variable must be given (StrictUndefined)."""
    text = _ENV.get_template(template).render(**context)
    # One trailing newline, whatever the template's last block did: stable checksums.
    return text.rstrip("\n") + "\n"


def host_with_role(spec: ClusterSpec, name: str, role: Role) -> HostSpec:
    """The host ``name``, which must have ``role``.

    :raises ValueError: the host is not in the spec or lacks the role (a caller bug: the
        workflow picks hosts by role).
    """
    try:
        host = spec.host(name)
    except KeyError:
        raise ValueError(f"host {name!r} is not in cluster {spec.cluster!r}") from None
    if role not in host.roles:
        raise ValueError(f"host {name} ({host.address}) does not have role {role.value}")
    return host


def addresses(hosts: list[HostSpec]) -> list[str]:
    return [str(h.address) for h in hosts]
