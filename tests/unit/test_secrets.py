"""The local secret store: generated only when asked, never invented for known passwords."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pgha import secrets
from pgha.errors import SettingsError
from pgha.models import SecretRef


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PGHA_STATE_DIR", str(tmp_path))
    return tmp_path


def test_resolve_generate_creates_once_and_keeps_value(state_dir: Path) -> None:
    first = secrets.resolve(SecretRef(secret="db-app"), generate=True)
    again = secrets.resolve(SecretRef(secret="db-app"), generate=True)
    assert first.get_secret_value() == again.get_secret_value()
    assert len(first.get_secret_value()) >= 24
    mode = stat.S_IMODE(os.stat(state_dir / "secrets.json").st_mode)
    assert mode == 0o600


def test_resolve_missing_stored_secret_without_generate_is_clear_error(state_dir: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        secrets.resolve(SecretRef(secret="sudo-ops"))
    assert f"{state_dir}/secrets.json: no secret named 'sudo-ops'" in str(caught.value)
    assert not (state_dir / "secrets.json").exists()


def test_resolve_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHA_TEST_PW", "from-env")
    assert secrets.resolve(SecretRef(env="PGHA_TEST_PW")).get_secret_value() == "from-env"
    f = tmp_path / "pw"
    f.write_text("from-file\n")
    assert secrets.resolve(SecretRef(file=str(f))).get_secret_value() == "from-file"


def test_resolve_unset_env_names_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        secrets.resolve(SecretRef(env="PGHA_SURELY_UNSET"))
    assert "PGHA_SURELY_UNSET: not set on this worker" in str(caught.value)
