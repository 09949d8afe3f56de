"""ensure_packages on a FakeHost fed recorded dpkg-query and apt-get output."""

from __future__ import annotations

import re

import pytest

from pgha.errors import CommandFailed
from pgha.hosts.ops.packages import apt_lock_busy, ensure_packages
from tests.unit.fakes import FakeHost, data

INSTALL_OPTS = (
    "-y --no-install-recommends -o Dpkg::Options::=--force-confdef "
    "-o Dpkg::Options::=--force-confold"
)
APT = "env DEBIAN_FRONTEND=noninteractive {}apt-get -o DPkg::Lock::Timeout=60"
UPDATE = f"{APT.format('')} update"
INSTALL = f"{APT.format('')} install {INSTALL_OPTS}"


def host_with_installed() -> FakeHost:
    """bash and openssh-server installed; nosuchpkg-pgha unknown (dpkg-query exits 1)."""
    return FakeHost().on(
        "dpkg-query",
        data("dpkg_query_mixed.txt"),
        stderr=data("dpkg_query_mixed_stderr.txt"),
        exit_code=1,
    )


def apt(host: FakeHost) -> list[str]:
    return [c for c in host.commands if "apt-get" in c]


async def test_ensure_packages_installed_any_version_is_noop() -> None:
    host = host_with_installed()
    out = await ensure_packages(host, {"bash": None, "openssh-server": None})
    assert not out.changed
    assert out.summary == (
        "all wanted packages are installed: bash=5.2.15-2+b8, openssh-server=1:9.2p1-2+deb12u10"
    )
    assert apt(host) == []


async def test_ensure_packages_pinned_same_version_is_noop() -> None:
    host = host_with_installed()
    out = await ensure_packages(host, {"openssh-server": "1:9.2p1-2+deb12u10"})
    assert not out.changed and apt(host) == []


async def test_ensure_packages_pinned_with_zero_epoch_is_same_version() -> None:
    host = host_with_installed()
    out = await ensure_packages(host, {"bash": "0:5.2.15-2+b8"})
    assert not out.changed and apt(host) == []


async def test_ensure_packages_missing_updates_then_installs_it() -> None:
    host = host_with_installed().on("apt-get")
    out = await ensure_packages(host, {"bash": None, "nosuchpkg-pgha": None})
    assert apt(host) == [UPDATE, f"{INSTALL} nosuchpkg-pgha"]
    assert out.changed and out.commands == apt(host)
    assert out.summary == "installed nosuchpkg-pgha"


async def test_ensure_packages_pinned_other_version_installs_pin() -> None:
    host = host_with_installed().on("apt-get")
    out = await ensure_packages(
        host, {"openssh-server": "1:9.2p1-2+deb12u3", "bash": None, "libc6-amd64": None}
    )
    assert apt(host) == [
        UPDATE,
        f"{INSTALL} --allow-downgrades openssh-server=1:9.2p1-2+deb12u3 libc6-amd64",
    ]
    assert out.summary == "installed openssh-server=1:9.2p1-2+deb12u3, libc6-amd64"


async def test_ensure_packages_proxy_goes_to_env_with_password_masked() -> None:
    host = host_with_installed().on("apt-get")
    out = await ensure_packages(
        host, {"nosuchpkg-pgha": None}, env_proxy="http://apt:hunter2@10.0.0.1:3142"
    )
    proxy = "http://apt:********@10.0.0.1:3142"
    assert apt(host)[0] == APT.format(f"http_proxy={proxy} https_proxy={proxy} ") + " update"
    assert all("hunter2" not in c for c in host.commands + out.commands)
    assert all([s.get_secret_value() for s in c.secrets] == ["hunter2"] for c in host.calls[1:])


async def test_ensure_packages_dpkg_lock_busy_raises_transient_command_failed() -> None:
    host = (
        host_with_installed()
        .on("update")
        .on(
            "install",
            data("apt_install_lock_timeout_stdout.txt"),
            stderr=data("apt_install_lock_timeout_stderr.txt"),
            exit_code=100,
        )
    )
    with pytest.raises(CommandFailed) as caught:
        await ensure_packages(host, {"nosuchpkg-pgha": None})
    err = caught.value
    assert apt_lock_busy(err)
    assert err.exit_code == 100 and err.host == "db1"
    assert "holds apt's lock; apt waited up to 60 s for it. This is transient" in str(err)
    assert "Unable to acquire the dpkg frontend lock" in str(err)


async def test_ensure_packages_lists_lock_busy_on_update_raises_transient() -> None:
    host = host_with_installed().on(
        "update", stderr=data("apt_update_lock_stderr.txt"), exit_code=100
    )
    with pytest.raises(CommandFailed) as caught:
        await ensure_packages(host, {"nosuchpkg-pgha": None})
    assert apt_lock_busy(caught.value)
    assert apt(host) == [UPDATE]  # never got to install


async def test_ensure_packages_version_not_found_is_not_lock_busy() -> None:
    host = (
        host_with_installed()
        .on("update")
        .on("install", stderr=data("apt_install_version_not_found_stderr.txt"), exit_code=100)
    )
    not_found = re.escape("Version '0.1-1' for 'hello' was not found")
    with pytest.raises(CommandFailed, match=not_found) as caught:
        await ensure_packages(host, {"hello": "0.1-1"})
    assert not apt_lock_busy(caught.value)
    assert "transient" not in str(caught.value)


async def test_ensure_packages_nothing_wanted_runs_nothing() -> None:
    host = FakeHost()
    out = await ensure_packages(host, {})
    assert not out.changed and out.summary == "no packages wanted" and host.commands == []


async def test_ensure_packages_bad_name_raises_value_error() -> None:
    host = FakeHost()
    with pytest.raises(ValueError, match="not a Debian package name"):
        await ensure_packages(host, {"postgresql-*": None})
    assert host.commands == []
