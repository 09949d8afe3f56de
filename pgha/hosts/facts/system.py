"""Facts about a host as a whole, for preflight: OS, CPUs, memory, disk, init, ports.

Read-only: one command each, parsed by a pure function. The clock
(:mod:`pgha.hosts.facts.clock`), apt sources and reachability (:mod:`pgha.hosts.facts.apt`)
live in their own modules and are re-exported here.
"""

from __future__ import annotations

import re
import shlex

from pydantic import BaseModel, ConfigDict

from pgha.hosts.facts.apt import AptSource, UrlCheck, apt_sources, url_reachable
from pgha.hosts.facts.clock import TimeSync, time_sync
from pgha.hosts.host import Host

__all__ = [
    "AptSource",
    "DiskFree",
    "InitSystem",
    "Listener",
    "Memory",
    "OsRelease",
    "TimeSync",
    "UrlCheck",
    "apt_sources",
    "cpu_count",
    "disk_free",
    "init_system",
    "listening_ports",
    "memory",
    "os_release",
    "time_sync",
    "url_reachable",
]


class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- OS -------------------------------------------------------------------------------------


class OsRelease(_Fact):
    """From os-release(5). A field the file lacks is "" (Debian testing has no VERSION_ID)."""

    id: str
    version_id: str = ""
    codename: str = ""
    pretty_name: str = ""


OS_RELEASE_CMD = "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release"


def parse_os_release(text: str) -> OsRelease:
    """Parse os-release's shell-style ``KEY="value"`` lines. Pure."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        try:
            words = shlex.split(raw)
            values[key] = words[0] if words else ""
        except ValueError:
            values[key] = raw.strip("\"'")
    codename = values.get("VERSION_CODENAME") or values.get("UBUNTU_CODENAME", "")
    if not codename:
        # Older releases only say it inside VERSION: "9 (stretch)".
        m = re.search(r"\(([a-z]+)\)", values.get("VERSION", ""))
        codename = m.group(1) if m else ""
    return OsRelease(
        id=values.get("ID", "linux"),
        version_id=values.get("VERSION_ID", ""),
        codename=codename,
        pretty_name=values.get("PRETTY_NAME", values.get("NAME", "")),
    )


async def os_release(host: Host) -> OsRelease:
    """The distribution and release of the host. Read-only."""
    out = await host.run(OS_RELEASE_CMD, label="os-release")
    return parse_os_release(out.stdout)


# --- CPU and memory -------------------------------------------------------------------------


async def cpu_count(host: Host) -> int:
    """How many CPUs processes on the host may use (`nproc`: honours affinity and cpusets).

    An int, not a model: preflight compares it directly.
    """
    out = await host.run(["nproc"], label="nproc")
    return int(out.stdout.strip())


class Memory(_Fact):
    """From /proc/meminfo, in MiB. ``available_mb`` is the kernel's estimate for new work."""

    total_mb: int
    available_mb: int
    swap_total_mb: int


def parse_meminfo(text: str) -> Memory:
    """Parse /proc/meminfo (``Name:   123 kB`` lines). Pure."""
    kb: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if sep and rest.split():
            kb[name.strip()] = int(rest.split()[0])
    if "MemAvailable" not in kb:  # kernels before 3.14
        kb["MemAvailable"] = sum(kb.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return Memory(
        total_mb=kb["MemTotal"] // 1024,
        available_mb=kb["MemAvailable"] // 1024,
        swap_total_mb=kb.get("SwapTotal", 0) // 1024,
    )


async def memory(host: Host) -> Memory:
    """Total and available memory. Read-only."""
    out = await host.run(["cat", "/proc/meminfo"], label="meminfo")
    return parse_meminfo(out.stdout)


# --- Disk -----------------------------------------------------------------------------------


class DiskFree(_Fact):
    """Room on the filesystem that holds ``path``, in GiB.

    ``measured_path`` is ``path`` itself or, when it does not exist yet, its nearest
    existing parent: the filesystem the path will be created on. ``free_gb`` is what
    unprivileged processes may still use (df's "Available", without root's reserve).
    """

    path: str
    measured_path: str
    filesystem: str
    mount_point: str
    total_gb: float
    free_gb: float


DISK_FREE_SCRIPT = r"""p=$1
while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done
printf '%s\n' "$p"
df -Pk -- "$p"
"""

_GIB_IN_KIB = 1024 * 1024


def parse_df(stdout: str, path: str) -> DiskFree:
    """Parse :data:`DISK_FREE_SCRIPT` output: the measured path, then `df -Pk`. Pure.

    The columns are found from the capacity column (``23%``), so a filesystem or mount
    point name with spaces does not shift them.
    """
    lines = stdout.splitlines()
    measured, row = lines[0], lines[-1].split()
    cap = next(i for i, f in enumerate(row) if i >= 4 and re.fullmatch(r"\d+%|-", f))
    total_kb, avail_kb = int(row[cap - 3]), int(row[cap - 1])
    return DiskFree(
        path=path,
        measured_path=measured,
        filesystem=" ".join(row[: cap - 3]),
        mount_point=" ".join(row[cap + 1 :]),
        total_gb=round(total_kb / _GIB_IN_KIB, 2),
        free_gb=round(avail_kb / _GIB_IN_KIB, 2),
    )


async def disk_free(host: Host, path: str) -> DiskFree:
    """Free and total space for ``path`` (or its nearest existing parent). Read-only."""
    out = await host.run(["sh", "-c", DISK_FREE_SCRIPT, "pgha-disk-free", path], label="df")
    return parse_df(out.stdout, path)


# --- Init system ----------------------------------------------------------------------------


class InitSystem(_Fact):
    """PID 1's command name, and systemd's overall state when PID 1 is systemd.

    ``state`` is what `systemctl is-system-running` prints: running, degraded, starting,
    initializing, maintenance, stopping, offline; None when PID 1 is not systemd.
    """

    pid1: str
    state: str | None

    @property
    def systemd(self) -> bool:
        return self.pid1 == "systemd"


INIT_SYSTEM_SCRIPT = r"""comm=$(cat /proc/1/comm)
printf 'pid1=%s\n' "$comm"
if [ "$comm" = systemd ]; then printf 'state=%s\n' "$(systemctl is-system-running 2>&1)"; fi
"""


def parse_init_system(stdout: str) -> InitSystem:
    """Parse :data:`INIT_SYSTEM_SCRIPT` output. Pure."""
    values = dict(line.partition("=")[::2] for line in stdout.splitlines() if "=" in line)
    state = values.get("state")
    return InitSystem(pid1=values.get("pid1", "").strip(), state=state.strip() if state else None)


async def init_system(host: Host) -> InitSystem:
    """What runs as PID 1 and, for systemd, whether it is healthy. Read-only."""
    out = await host.run(["sh", "-c", INIT_SYSTEM_SCRIPT], label="init-system")
    return parse_init_system(out.stdout)


# --- Listening ports ------------------------------------------------------------------------


class Listener(_Fact):
    """A listening TCP socket. ``process`` and ``pid`` are None when ss cannot see them."""

    port: int
    address: str
    process: str | None
    pid: int | None


_SS_USERS = re.compile(r'\("(?P<name>(?:[^"\\]|\\.)*)",pid=(?P<pid>\d+)')


def parse_ss(stdout: str) -> list[Listener]:
    """Parse `ss -Hltnp` lines. Pure.

    ``0.0.0.0:22``, ``[::]:22``, ``*:22`` and ``127.0.0.53%lo:53`` all work; with several
    processes on one socket (pre-forked servers) the first is reported.
    """
    out: list[Listener] = []
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        local = fields[3]
        address, _, port = local.rpartition(":")
        if not port.isdigit():
            continue
        # "[fe80::1]%eth0", "127.0.0.53%lo": drop the interface, then IPv6 brackets.
        address = address.split("%", 1)[0].removeprefix("[").removesuffix("]")
        m = _SS_USERS.search(line)
        out.append(
            Listener(
                port=int(port),
                address=address,
                process=m.group("name") if m else None,
                pid=int(m.group("pid")) if m else None,
            )
        )
    return out


async def listening_ports(host: Host) -> list[Listener]:
    """The TCP ports something listens on, with the process holding each. Read-only."""
    out = await host.run(["ss", "-Hltnp"], label="ss")
    return parse_ss(out.stdout)
