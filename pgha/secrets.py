"""Resolves secret references to values, on the worker only. Never called from workflows.

The default store is a JSON file (mode 0600) under pgha's state directory; a name that is
not there yet gets a fresh random value, so clusters get strong generated passwords.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets as _random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from pgha.errors import SettingsError
from pgha.models import SecretRef
from pgha.settings import state_dir


def store_path() -> Path:
    return state_dir() / "secrets.json"


def _read_store(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SettingsError(f"{path}: secret store is unreadable ({err}); restore it") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: secret store must be a JSON object")
    return {str(k): str(v) for k, v in data.items()}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize read-modify-write of the store between worker processes on this machine."""
    fd = os.open(path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def stored_secret(name: str, *, generate: bool) -> SecretStr:
    """The value of ``name`` in the store; with ``generate``, a new random one is saved when
    missing (for credentials pgha itself sets, such as database passwords). Idempotent.

    The store is local to the worker's machine: workers on several machines need the same
    store file (or env/file references), or each would generate its own value.

    :raises SettingsError: the name is missing and ``generate`` is False.
    """
    path = store_path()
    with _locked(path):
        store = _read_store(path)
        if name not in store:
            if not generate:
                raise SettingsError(
                    f"{path}: no secret named {name!r}; add it (`pgha` stores JSON "
                    '{"name": "value"}, mode 0600) or reference {env: VAR} / {file: PATH}'
                )
            store[name] = _random.token_urlsafe(24)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(store, f, indent=2, sort_keys=True)
            tmp.replace(path)
    return SecretStr(store[name])


def resolve(ref: SecretRef, *, generate: bool = False) -> SecretStr:
    """The secret's value.

    :param generate: create a missing ``{secret: name}``; only for credentials that pgha
        itself sets. A password pgha must *know* (sudo) is never invented.
    :raises SettingsError: when the secret, environment variable or file is missing.
    """
    if ref.secret is not None:
        return stored_secret(ref.secret, generate=generate)
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise SettingsError(
                f"secret from environment variable {ref.env}: not set on this worker; "
                "export it before starting `pgha worker`"
            )
        return SecretStr(value)
    assert ref.file is not None  # guaranteed by SecretRef's validator
    try:
        return SecretStr(Path(ref.file).read_text().strip())
    except OSError as err:
        raise SettingsError(f"secret file {ref.file}: cannot read ({err.strerror})") from None
