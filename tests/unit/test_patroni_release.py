"""Running a Patroni release from PyPI: the pure parts (which script runs, the unit's
drop-in, which version an upgrade goes to) and the worker's wheel cache, with pip faked
by a script so that a failed download is seen as the operator would see it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pgha.hosts.ops.patroni_release import drop_in, expected_script, script_of
from pgha.patroni_wheel import WheelUnavailable, patroni_wheel, wheel_name
from pgha.spec import parse_spec
from pgha.workflows.patroni_upgrade import _release_target, _upstream
from tests.specs import REFERENCE


def test_the_running_script_is_read_past_the_interpreter() -> None:
    assert script_of("/usr/bin/python3 /usr/bin/patroni /etc/patroni/config.yml ") == (
        "/usr/bin/patroni"
    )
    venv = "/opt/pgha/patroni-3.0.4/bin"
    assert script_of(f"{venv}/python3 {venv}/patroni /etc/patroni/config.yml") == (
        f"{venv}/patroni"
    )
    assert script_of("") is None
    assert expected_script(None) == "/usr/bin/patroni"
    assert expected_script("3.0.4") == f"{venv}/patroni"


def test_the_drop_in_clears_the_package_exec_start_first() -> None:
    lines = drop_in("3.0.4").splitlines()
    start = lines.index("[Service]")
    assert lines[start + 1 :] == [
        "ExecStart=",
        "ExecStart=/opt/pgha/patroni-3.0.4/bin/patroni /etc/patroni/config.yml",
    ]


def test_an_upgrade_with_a_release_in_the_spec_goes_to_that_release_only() -> None:
    spec = parse_spec(REFERENCE | {"patroni": {"pypi_version": "3.0.4"}}, "x")
    assert _release_target(spec, "3.0.4") == "3.0.4"
    with pytest.raises(ValueError) as caught:
        _release_target(spec, "3.3.0")
    assert str(caught.value) == (
        "the spec runs Patroni 3.0.4 from PyPI (patroni.pypi_version); to move to 3.3.0, set "
        "patroni.pypi_version: 3.3.0 in the spec and run this again"
    )
    assert _upstream("3.0.2-1") == "3.0.2" and _upstream("1:3.0.4-2") == "3.0.4"
    assert _upstream("3.0.4") == "3.0.4"


async def test_a_cached_wheel_is_used_without_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGHA_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # pip must not run
    cached = tmp_path / "wheels" / wheel_name("3.0.4")
    cached.parent.mkdir()
    cached.write_bytes(b"PK wheel")
    assert await patroni_wheel("3.0.4") == cached


async def test_a_failed_download_names_the_version_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGHA_STATE_DIR", str(tmp_path / "state"))
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\necho 'ERROR: Could not find a version that satisfies the requirement "
        "patroni==3.0.99'\necho 'ERROR: No matching distribution found for patroni==3.0.99'\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    with pytest.raises(WheelUnavailable) as caught:
        await patroni_wheel("3.0.99")
    msg = str(caught.value)
    assert msg.startswith("the worker could not download Patroni 3.0.99 from PyPI (ERROR: Could")
    assert "No matching distribution found for patroni==3.0.99" in msg
    assert f"put patroni-3.0.99-py3-none-any.whl into {tmp_path}/state/wheels by hand" in msg
    assert list((tmp_path / "state" / "wheels").iterdir()) == []  # no half download left
