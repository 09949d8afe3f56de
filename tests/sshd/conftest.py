"""tests/sshd: pooled SSH connections closed at the end, and throw-away sudo users."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import SecretStr

from pgha.hosts.host import close_all
from pgha.models import HostTarget

SUDOERS_D = Path("/etc/sudoers.d")


@pytest_asyncio.fixture(scope="session", autouse=True)
async def _close_pooled_connections() -> AsyncIterator[None]:
    yield
    await close_all()


@dataclass(frozen=True)
class SudoUsers:
    """Non-root users on the test sshd, all with ``sudo=True`` in their targets.

    ``nopasswd`` may run anything with NOPASSWD; ``password`` must give ``secret``;
    ``norule`` has the same password but no sudoers rule.
    """

    nopasswd: HostTarget
    password: HostTarget
    norule: HostTarget
    secret: SecretStr


def _run(*argv: str, input: str | None = None) -> None:
    subprocess.run(argv, input=input, text=True, check=True, capture_output=True)


def _add_user(name: str, password: str, public_key: str) -> None:
    _run("useradd", "--create-home", "--shell", "/bin/sh", name)
    # With UsePAM no, sshd refuses a locked account (useradd's "!") even with a valid key.
    _run("chpasswd", input=f"{name}:{password}\n")
    ssh = Path("/home", name, ".ssh")
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys").write_text(public_key)
    shutil.chown(ssh, name, name)
    shutil.chown(ssh / "authorized_keys", name, name)


@pytest.fixture(scope="session")
def sudo_users(sshd: HostTarget) -> Iterator[SudoUsers]:
    """Create users (NOPASSWD, password, no rule) and a sudoers drop-in; remove them after.

    Names are unique per session (``pghat<hex>n``/``p``/``r``), so sessions running at the same
    time do not collide; the test sshd finds their key in ``~/.ssh/authorized_keys``.
    Skips unless running as root with sudo installed.
    """
    if os.geteuid() != 0:
        pytest.skip("creating throw-away users needs root")
    if shutil.which("sudo") is None or shutil.which("useradd") is None:
        pytest.skip("sudo is not installed (apt-get install sudo)")
    assert sshd.key_file is not None
    public_key = Path(sshd.key_file + ".pub").read_text()
    tag = uuid.uuid4().hex[:8]
    nopasswd, password, norule = f"pghat{tag}n", f"pghat{tag}p", f"pghat{tag}r"
    secret = "pw-" + secrets.token_urlsafe(12)
    # sudo ignores drop-ins whose name contains a dot.
    dropin = SUDOERS_D / f"pgha-test-{tag}"
    staged = SUDOERS_D / f".pgha-test-{tag}.tmp"
    created: list[str] = []
    try:
        for name, pw in (
            (nopasswd, secrets.token_urlsafe(12)),
            (password, secret),
            (norule, secret),
        ):
            created.append(name)
            _add_user(name, pw, public_key)
        staged.write_text(f"{nopasswd} ALL=(ALL:ALL) NOPASSWD: ALL\n{password} ALL=(ALL:ALL) ALL\n")
        staged.chmod(0o440)
        _run("visudo", "-c", "-q", "-f", str(staged))
        staged.rename(dropin)
        yield SudoUsers(
            nopasswd=sshd.model_copy(update={"name": "nopw", "user": nopasswd, "sudo": True}),
            password=sshd.model_copy(update={"name": "pw", "user": password, "sudo": True}),
            norule=sshd.model_copy(update={"name": "norule", "user": norule, "sudo": True}),
            secret=SecretStr(secret),
        )
    finally:
        staged.unlink(missing_ok=True)
        dropin.unlink(missing_ok=True)
        for name in created:
            # -f: a session the test sshd has not reaped yet must not keep the user around.
            subprocess.run(["userdel", "--force", "--remove", name], capture_output=True)
            Path("/run/sudo/ts", name).unlink(missing_ok=True)
