"""Converge which Patroni a database host runs: the distribution's package, or a release
from PyPI (``patroni.pypi_version``) in a venv beside it.

The venv (``/opt/pgha/patroni-<version>``) sees the system's site-packages, so it reuses
the Python libraries the package brought (psycopg2, yaml, click, urllib3...), and Debian's
patroni.service, directories and config stay as they are: a systemd drop-in points the
unit's ExecStart at the venv, and /usr/local/bin links (first on root's and sudo's PATH)
make `patroni` and `patronictl` the same release for pgha and for the operator.

Never restarts Patroni: a member that runs another Patroni than the one installed here
changes at its next restart, which PatroniUpgrade does in maintenance mode
(:func:`running_patroni` tells the caller).
"""

from __future__ import annotations

import posixpath
import shlex

from pgha.checks.failover_floor import parse_patroni_version
from pgha.hosts.facts.files import file_state
from pgha.hosts.host import Host, render_command
from pgha.hosts.ops.files import ensure_directory, ensure_file
from pgha.hosts.ops.packages import ensure_packages
from pgha.hosts.ops.systemd import daemon_reload
from pgha.hosts.result import Outcome, combine

RELEASES_DIR = "/opt/pgha"
WHEEL_CACHE = "/var/cache/pgha"
DROP_IN = "/etc/systemd/system/patroni.service.d/pgha-release.conf"
PACKAGE_BIN = "/usr/bin/patroni"
LINKS = {"patroni": "/usr/local/bin/patroni", "patronictl": "/usr/local/bin/patronictl"}
PATRONI_CONFIG = "/etc/patroni/config.yml"


def release_dir(version: str) -> str:
    return f"{RELEASES_DIR}/patroni-{version}"


def drop_in(version: str) -> str:
    """patroni.service's ExecStart replaced (the empty line clears the package's)."""
    return (
        f"# pgha: Patroni {version} from PyPI (patroni.pypi_version in the cluster spec),\n"
        "# not the distribution's package. Removed by pgha when the spec drops it.\n"
        "[Service]\nExecStart=\n"
        f"ExecStart={release_dir(version)}/bin/patroni {PATRONI_CONFIG}\n"
    )


async def _loaded_drop_ins(host: Host) -> list[str]:
    """The drop-ins systemd has loaded for patroni.service. systemd does not flag a unit
    for reload (NeedDaemonReload) when a drop-in appears: pgha must look itself."""
    out = await host.run(["systemctl", "show", "-p", "DropInPaths", "--value", "patroni"],
                         check=False, label="systemctl show")  # fmt: skip
    return out.stdout.split()


async def _venv_version(host: Host, version: str) -> tuple[int, int, int] | None:
    out = await host.run([f"{release_dir(version)}/bin/patroni", "--version"], check=False,
                         label="patroni --version")  # fmt: skip
    try:
        return parse_patroni_version(out.stdout) if out.ok else None
    except ValueError:
        return None


async def _ensure_links(host: Host, target_dir: str | None) -> list[Outcome]:
    """/usr/local/bin/patroni{,ctl} -> the venv's, or gone (only links pgha made)."""
    outcomes = []
    for name, link in LINKS.items():
        out = await host.run(["readlink", link], check=False, label="readlink")
        now = out.stdout.strip() if out.ok else None
        want = f"{target_dir}/bin/{name}" if target_dir else None
        if want is None:
            if now is not None and now.startswith(RELEASES_DIR + "/"):
                cmd = ["rm", "-f", link]
                await host.run(cmd)
                outcomes.append(Outcome.made(f"removed {link}", [render_command(cmd)]))
            continue
        if now == want:
            outcomes.append(Outcome.unchanged(f"{link} -> {want}"))
            continue
        cmd = ["ln", "-sfn", want, link]
        await host.run(cmd)
        outcomes.append(Outcome.made(f"linked {link} -> {want}", [render_command(cmd)]))
    return outcomes


async def ensure_release(
    host: Host, version: str, wheel: bytes, *, env_proxy: str | None = None
) -> Outcome:
    """Patroni ``version`` installed in its venv from ``wheel`` (its bytes), the unit's
    drop-in and the links in place. Idempotent: a venv that already answers with the
    version is kept; a broken or partial one is rebuilt.

    :raises CommandFailed: apt, venv or pip failed (their message is in the error).
    """
    d = release_dir(version)
    wanted = parse_patroni_version(version)
    outcomes = [await ensure_packages(host, {"python3-venv": None}, env_proxy=env_proxy)]
    if await _venv_version(host, version) != wanted:
        wheel_path = posixpath.join(WHEEL_CACHE, f"patroni-{version}-py3-none-any.whl")
        outcomes += [await ensure_directory(host, WHEEL_CACHE),
                     await ensure_file(host, wheel_path, wheel)]  # fmt: skip
        q = shlex.quote(d)
        # A venv is not relocatable (its scripts name its path): build it in place, and a
        # run cut short is rebuilt by the next one, which finds no working version.
        line = (
            f"rm -rf {q} && mkdir -p {shlex.quote(RELEASES_DIR)} && "
            f"python3 -m venv --system-site-packages {q} && "
            f"{q}/bin/pip install --quiet --no-deps --no-index --no-cache-dir "
            f"--disable-pip-version-check {shlex.quote(wheel_path)}"
        )
        await host.run(line, label="patroni venv", timeout=300)
        got = await _venv_version(host, version)
        if got != wanted:
            raise RuntimeError(f"{d}/bin/patroni --version says {got}, not {version}")
        outcomes.append(Outcome.made(f"installed Patroni {version} in {d}", [line]))
    outcomes += [await ensure_directory(host, posixpath.dirname(DROP_IN)),
                 await ensure_file(host, DROP_IN, drop_in(version))]  # fmt: skip
    if outcomes[-1].changed or DROP_IN not in await _loaded_drop_ins(host):
        outcomes.append(await daemon_reload(host))
    outcomes += await _ensure_links(host, d)
    return combine(*outcomes)


async def ensure_package_patroni(host: Host) -> Outcome:
    """The distribution's Patroni again: pgha's drop-in and links removed (release venvs
    are left in /opt/pgha, small and harmless). Idempotent."""
    outcomes = []
    if (await file_state(host, DROP_IN)).exists:
        cmd = ["rm", "-f", DROP_IN]
        await host.run(cmd)
        outcomes.append(Outcome.made(f"removed {DROP_IN}", [render_command(cmd)]))
    if DROP_IN in await _loaded_drop_ins(host):
        outcomes.append(await daemon_reload(host))
    outcomes += await _ensure_links(host, None)
    return combine(*outcomes) if outcomes else Outcome.unchanged("Patroni is the package's")


#: The running Patroni's command line (its script's path is the second word), or nothing.
RUNNING_SCRIPT = (
    "pid=$(systemctl show -p MainPID --value patroni); "
    '[ -n "$pid" ] && [ "$pid" != 0 ] && tr "\\0" " " < /proc/$pid/cmdline || true'
)


async def running_patroni(host: Host) -> str | None:
    """The script the running Patroni was started from (``/usr/bin/patroni`` or a venv's),
    None when Patroni does not run. Read-only."""
    out = await host.run(["sh", "-c", RUNNING_SCRIPT], check=False, label="patroni process")
    return script_of(out.stdout)


def script_of(cmdline: str) -> str | None:
    """``/usr/bin/python3 /usr/bin/patroni /etc/patroni/config.yml`` -> ``/usr/bin/patroni``
    (the interpreter comes first, the config after). Pure."""
    return next((w for w in cmdline.split() if w.endswith("/patroni")), None)


def expected_script(version: str | None) -> str:
    """The script Patroni should run from: the release's venv, or the package's."""
    return f"{release_dir(version)}/bin/patroni" if version else PACKAGE_BIN
