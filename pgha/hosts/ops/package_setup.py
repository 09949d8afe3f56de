"""What must be true on a host before and around apt installs: the apt proxy file, Debian's
PostgreSQL cluster auto-creation turned off, an interrupted dpkg finished. No installs here
(pgha.hosts.ops.packages does those), no service restarts.
"""

from __future__ import annotations

import re

from pgha.hosts.host import Host, render_command
from pgha.hosts.ops.files import ensure_directory, ensure_file
from pgha.hosts.result import Outcome

APT_PROXY_PATH = "/etc/apt/apt.conf.d/01pgha-proxy"
CREATECLUSTER_PATH = "/etc/postgresql-common/createcluster.conf"

#: Prints "present" and the file, or "absent": an empty file is not a missing one.
READ_SCRIPT = 'if [ -f "$1" ]; then echo present; cat -- "$1"; else echo absent; fi'

_SETTING = re.compile(r"^\s*create_main_cluster\s*=\s*(\S+)\s*$")


def apt_proxy_conf(proxy: str, header: str) -> str:
    """apt.conf lines sending every download through ``proxy``. Pure.

    https too, as preflight's reachability check does (it sets both http_proxy and
    https_proxy), so preflight and the install see the same network path.
    """
    if '"' in proxy or "\n" in proxy or ";" in proxy:
        raise ValueError(f"packages.apt_proxy: {proxy!r} cannot be written to apt.conf")
    return f'// {header}\nAcquire::http::Proxy "{proxy}";\nAcquire::https::Proxy "{proxy}";\n'


async def ensure_apt_proxy(host: Host, proxy: str | None, header: str) -> Outcome:
    """Write pgha's apt proxy file, or remove it when no proxy is wanted. Idempotent.

    The file is 0600 when the URL carries a password (apt reads it as root), else 0644.
    """
    if proxy:
        mode = 0o600 if "@" in proxy.split("//", 1)[-1] else 0o644
        return await ensure_file(host, APT_PROXY_PATH, apt_proxy_conf(proxy, header), mode=mode)
    out = await host.run(["sh", "-c", 'test -e "$1" && rm -f -- "$1" && echo removed', "rm",
                          APT_PROXY_PATH], check=False)  # fmt: skip
    if "removed" in out.stdout:
        return Outcome.made(f"removed {APT_PROXY_PATH} (no apt proxy in the spec)",
                            [f"rm -f {APT_PROXY_PATH}"])  # fmt: skip
    return Outcome.unchanged("no apt proxy wanted, and none configured by pgha")


def without_main_cluster(current: str | None, header: str) -> str:
    """createcluster.conf with ``create_main_cluster = false``, every other line kept. Pure.

    :param current: the file's text, None when it does not exist.
    """
    if current is None:
        return f"# {header}\ncreate_main_cluster = false\n"
    lines = [ln for ln in current.splitlines() if not _SETTING.match(ln)]
    return "\n".join([*lines, "create_main_cluster = false"]) + "\n"


def main_cluster_disabled(current: str | None) -> bool:
    """Whether the last create_main_cluster setting (the one that counts) is false. Pure."""
    values = [m.group(1) for ln in (current or "").splitlines() if (m := _SETTING.match(ln))]
    return bool(values) and values[-1].strip("'\"").lower() in ("false", "off", "no", "0")


async def ensure_no_main_cluster(host: Host, header: str) -> Outcome:
    """Turn off postgresql-common's ``main`` cluster, before a server package is installed:
    it would occupy port 5432 and a data directory Patroni wants. Idempotent; keeps the
    file's other settings."""
    out = await host.run(["sh", "-c", READ_SCRIPT, "read", CREATECLUSTER_PATH], label="cat")
    flag, _, text = out.stdout.partition("\n")
    current = text if flag == "present" else None
    if main_cluster_disabled(current):
        return Outcome.unchanged(f"{CREATECLUSTER_PATH} already has create_main_cluster = false")
    await ensure_directory(host, "/etc/postgresql-common")
    done = await ensure_file(host, CREATECLUSTER_PATH, without_main_cluster(current, header))
    return Outcome.made(f"set create_main_cluster = false in {CREATECLUSTER_PATH}", done.commands)


#: Prints "busy" while apt or dpkg runs (their journal is then legitimately non-empty),
#: else the first entry of dpkg's journal, if any. Reads /proc: procps may be missing.
DPKG_JOURNAL_SCRIPT = r"""for c in /proc/[0-9]*/comm; do
  case "$(cat "$c" 2>/dev/null)" in dpkg|apt|apt-get) echo busy; exit 0;; esac
done
ls -A /var/lib/dpkg/updates 2>/dev/null | head -n 1
"""


async def finish_interrupted_dpkg(host: Host) -> Outcome:
    """Finish what an interrupted dpkg left half-configured (a cancelled install): apt
    refuses to install anything until then. Idempotent; does nothing after a clean run.

    dpkg's journal in /var/lib/dpkg/updates is non-empty exactly when it was interrupted
    (apt checks the same), or while it runs: an install a dead worker started goes on
    without pgha, and the apt that follows waits for its lock instead.
    """
    out = await host.run(["sh", "-c", DPKG_JOURNAL_SCRIPT], label="dpkg-journal")
    seen = out.stdout.strip()
    if seen == "busy":
        return Outcome.unchanged("apt or dpkg is running; apt will wait for its lock")
    if not seen:
        return Outcome.unchanged("dpkg was not interrupted")
    cmd = ["env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--force-confdef",
           "--force-confold", "--configure", "-a"]  # fmt: skip
    await host.run(cmd)
    return Outcome.made("finished an interrupted dpkg run", [render_command(cmd)])
