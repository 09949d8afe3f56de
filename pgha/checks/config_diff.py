"""What reconfigure would change: the spec's Patroni and PostgreSQL settings against what
the DCS and each member hold. Pure.

Values are compared as text after YAML's booleans become on/off, so 100 and "100" are
equal, as PostgreSQL and Patroni take them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgha.reconfigure_models import SettingChange

#: Settings a hot standby must hold at least as high as its primary (PostgreSQL refuses to
#: start a standby below them): raising one restarts the replicas first, lowering one the
#: primary first.
STANDBY_MINIMUMS = frozenset(
    {
        "max_connections",
        "max_prepared_transactions",
        "max_locks_per_transaction",
        "max_wal_senders",
        "max_worker_processes",
    }
)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"postgresql": {"parameters": {"a.b": 1}}} -> {"postgresql.parameters.a.b": 1}; a
    parameter's own dots are kept (PostgreSQL names like pg_stat_statements.max)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and path != "postgresql.parameters":
            out |= _flatten(value, f"{path}.")
        elif isinstance(value, Mapping):
            out |= {f"{path}.{k}": v for k, v in value.items()}
        else:
            out[path] = value
    return out


def dcs_changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[SettingChange]:
    """The keys of ``wanted`` (pgha's dynamic config) whose value differs in ``current``
    (the DCS); keys pgha does not manage are left alone, never removed."""
    now, want = _flatten(current), _flatten(wanted)
    return [
        SettingChange(scope="dcs", key=k, old=_text(now.get(k)), new=_text(v))
        for k, v in sorted(want.items())
        if _text(now.get(k)) != _text(v)
    ]


def parameter_changes(
    member: str, current: Mapping[str, Any], wanted: Mapping[str, Any]
) -> list[SettingChange]:
    """A member's own postgresql.parameters (its config file): changed, added, removed."""
    keys = sorted(set(current) | set(wanted))
    return [
        SettingChange(scope=member, key=f"postgresql.parameters.{k}",
                      old=_text(current.get(k)), new=_text(wanted.get(k)))
        for k in keys if _text(current.get(k)) != _text(wanted.get(k))
    ]  # fmt: skip


def parameter_name(change: SettingChange) -> str | None:
    """The PostgreSQL parameter a change is about, None for a Patroni setting."""
    prefix = "postgresql.parameters."
    return change.key[len(prefix) :] if change.key.startswith(prefix) else None


def lowered_minimums(changes: list[SettingChange]) -> list[str]:
    """The standby-minimum parameters a change lowers (the primary must restart first)."""
    out = []
    for c in changes:
        name = parameter_name(c)
        if name in STANDBY_MINIMUMS and c.old is not None and c.new is not None:
            try:
                if int(c.new) < int(c.old):
                    out.append(name)
            except ValueError:
                continue
    return out


def edit_config_args(changes: list[SettingChange]) -> list[str]:
    """`patronictl edit-config` arguments for the DCS changes: ``-p name=value`` for
    PostgreSQL parameters, ``-s key=value`` for Patroni's own; null removes."""
    args: list[str] = []
    for c in changes:
        value = "null" if c.new is None else c.new
        name = parameter_name(c)
        args += ["-p", f"{name}={value}"] if name else ["-s", f"{c.key}={value}"]
    return args
