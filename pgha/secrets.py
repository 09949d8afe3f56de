"""Resolves secret references to values, on the worker only. Never called from workflows.

The default store is a JSON file (mode 0600) under pgha's state directory; a name that is
not there yet gets a fresh random value, so clusters get strong generated passwords.
"""

from __future__ import annotations

import json
import os
import secrets as _random
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


def stored_secret(name: str, *, generate: bool = True) -> SecretStr:
    """The value of ``name`` in the store, generated and saved when missing. Idempotent."""
    path = store_path()
    store = _read_store(path)
    if name not in store:
        if not generate:
            raise SettingsError(f"{path}: no secret named {name!r}")
        store[name] = _random.token_urlsafe(24)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(store, f, indent=2, sort_keys=True)
        tmp.replace(path)
    return SecretStr(store[name])


def resolve(ref: SecretRef) -> SecretStr:
    """The secret's value.

    :raises SettingsError: when the environment variable or file it names is missing.
    """
    if ref.secret is not None:
        return stored_secret(ref.secret)
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
