"""Converge Debian packages to installed (any or an exact version) with apt. Never removes.

Installing a package may start its service (Debian's policy); callers that must configure
a service before it first starts arrange that beforehand (e.g. createcluster.conf).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from pydantic import SecretStr

from pgha.errors import CommandFailed
from pgha.hosts.facts.packages import check_package_name, installed_packages
from pgha.hosts.host import Host, mask, render_command
from pgha.hosts.result import Outcome

#: How long apt waits for another apt/dpkg (unattended-upgrades...) to release its lock
#: before giving up with "Could not get lock".
LOCK_WAIT_S = 60

#: apt's errors when another apt or dpkg holds a lock: "Could not get lock" without a lock
#: timeout, "Unable to acquire the dpkg frontend lock" once DPkg::Lock::Timeout ran out
#: (its "Waiting for cache lock: ..." lines go to stdout and are no failure), and "Unable
#: to lock directory /var/lib/apt/lists/" from `apt-get update`, which does not wait.
APT_LOCK_ERRORS = (
    "E: Could not get lock ",
    "E: Unable to acquire the dpkg frontend lock",
    "E: Unable to lock ",
)


def apt_lock_busy(err: CommandFailed) -> bool:
    """Whether apt failed because another apt or dpkg held its lock (transient)."""
    return any(line.startswith(APT_LOCK_ERRORS) for line in err.stderr_tail.splitlines())


def _same_version(installed: str, wanted: str) -> bool:
    """Compare by meaning: an epoch of 0 may be written or left out."""
    return installed.removeprefix("0:") == wanted.removeprefix("0:")


def _apt(verb: str, env_proxy: str | None, *args: str) -> list[str]:
    env = ["env", "DEBIAN_FRONTEND=noninteractive"]
    if env_proxy:
        env += [f"http_proxy={env_proxy}", f"https_proxy={env_proxy}"]
    return [*env, "apt-get", "-o", f"DPkg::Lock::Timeout={LOCK_WAIT_S}", verb, *args]


async def refresh_lists(host: Host, env_proxy: str | None = None) -> None:
    """`apt-get update`, so the versions apt offers are the sources' current ones.

    :raises CommandFailed: apt failed (its lock held too long is transient).
    """
    password = urlsplit(env_proxy).password if env_proxy else None
    await host.run(_apt("update", env_proxy), label="apt-get update",
                   secrets=[SecretStr(password)] if password else [])  # fmt: skip


async def ensure_packages(
    host: Host, wanted: Mapping[str, str | None], *, env_proxy: str | None = None
) -> Outcome:
    """Install the packages that are missing or at another version than pinned.

    Idempotent: reads the installed versions first and runs apt only when something must
    change; then `apt-get update` before the install, so the pinned versions are known.
    Keeps existing config files (``--force-confold``) and installs no recommends. A pin
    lower than the installed version is a downgrade, allowed for pins only.

    :param wanted: package -> exact Debian version (``15.18-0+deb12u1``), or None for any.
    :param env_proxy: proxy URL for apt, given as ``http_proxy``/``https_proxy``
        (an ``Acquire::http::Proxy`` in apt.conf still wins); its password is masked.
    :raises ValueError: a name is not a package name.
    :raises CommandFailed: apt failed. When another apt or dpkg holds the lock for longer
        than :data:`LOCK_WAIT_S`, the message says so and the error is transient
        (:func:`apt_lock_busy` tells); a missing version or package is permanent.
    """
    for name in wanted:
        check_package_name(name)
    if not wanted:
        return Outcome.unchanged("no packages wanted")
    current = await installed_packages(host, list(wanted))
    pinned: list[str] = []
    loose: list[str] = []
    for name, version in wanted.items():
        have = current[name]
        if version is None and have is None:
            loose.append(name)
        elif version is not None and (have is None or not _same_version(have, version)):
            pinned.append(f"{name}={version}")
    if not pinned and not loose:
        shown = ", ".join(f"{n}={current[n]}" for n in wanted)
        return Outcome.unchanged(f"all wanted packages are installed: {shown}")

    password = urlsplit(env_proxy).password if env_proxy else None
    secrets = [SecretStr(password)] if password else []
    opts = [
        "-y",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ]
    if pinned:
        opts.append("--allow-downgrades")
    todo = [
        _apt("update", env_proxy),
        _apt("install", env_proxy, *opts, *pinned, *loose),
    ]
    try:
        await host.run_all(todo, secrets=secrets)
    except CommandFailed as err:
        if not apt_lock_busy(err):
            raise
        raise CommandFailed(
            host.name,
            host.address,
            err.command,
            err.exit_code,
            "another apt or dpkg process (unattended-upgrades, an operator) holds apt's lock; "
            f"apt waited up to {LOCK_WAIT_S} s for it. This is transient and safe to retry:"
            f"\n{err.stderr_tail}",
        ) from None
    return Outcome.made(
        f"installed {', '.join(pinned + loose)}",
        [mask(render_command(c), secrets) for c in todo],
    )
