"""Facts about a host as a whole, for preflight: OS, CPUs, memory, disk, init, clock, ports.

Read-only: one command each, parsed by a pure function. Apt sources and reachability live
in :mod:`pgha.hosts.facts.apt` and are re-exported here.
"""

from __future__ import annotations

import re
import shlex

from pydantic import BaseModel, ConfigDict

from pgha.hosts.facts.apt import AptSource, UrlCheck, apt_sources, url_reachable
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


# --- Clock ----------------------------------------------------------------------------------


class TimeSync(_Fact):
    """Whether the clock is synchronized, by which service, and what was seen.

    ``synchronized`` is None when no tool could tell (no chrony, ntpd or timedatectl that
    answers); ``detail`` then says what was tried.
    """

    synchronized: bool | None
    service: str | None
    detail: str


#: Every clock tool that is present reports in its own section; the parser picks the most
#: specific answer. "## container=" tells whether the clock belongs to a container host.
TIME_SYNC_SCRIPT = r"""if command -v chronyc >/dev/null 2>&1; then
  echo '## chronyc'; chronyc -n tracking 2>&1; echo "## rc=$?"; fi
if command -v ntpq >/dev/null 2>&1; then
  echo '## ntpq'; ntpq -pn 2>&1; echo "## rc=$?"; fi
if command -v timedatectl >/dev/null 2>&1; then
  echo '## timedatectl'; timedatectl show -p NTPSynchronized -p NTP 2>&1; echo "## rc=$?"; fi
c=$(systemd-detect-virt --container 2>/dev/null) || c=
if [ -z "$c" ] && [ -f /.dockerenv ]; then c=docker; fi
if [ -z "$c" ] && [ -f /run/.containerenv ]; then c=podman; fi
echo "## container=${c:-none}"
"""

#: chrony's reference id when it serves its own clock (``local stratum N``), not NTP time.
_CHRONY_LOCAL_REF = "7F7F0101"


def _sections(stdout: str) -> tuple[dict[str, tuple[list[str], int]], str]:
    sections: dict[str, tuple[list[str], int]] = {}
    container = "none"
    name: str | None = None
    lines: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("## rc=") and name is not None:
            sections[name] = (lines, int(line.removeprefix("## rc=")))
            name, lines = None, []
        elif line.startswith("## container="):
            container = line.removeprefix("## container=").strip() or "none"
        elif line.startswith("## "):
            name, lines = line.removeprefix("## ").strip(), []
        elif name is not None:
            lines.append(line)
    return sections, container


def _chrony(lines: list[str]) -> TimeSync:
    fields = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    leap, ref = fields.get("Leap status", "?"), fields.get("Reference ID", "?")
    if leap == "Normal" and ref.startswith(_CHRONY_LOCAL_REF):
        return TimeSync(
            synchronized=False,
            service="chrony",
            detail="chrony serves its own local clock (local stratum), no NTP source",
        )
    if leap == "Normal":
        return TimeSync(
            synchronized=True,
            service="chrony",
            detail=f"chrony: reference {ref}, stratum {fields.get('Stratum', '?')}, "
            f"system time {fields.get('System time', '?')}",
        )
    return TimeSync(synchronized=False, service="chrony", detail=f"chrony: leap status {leap}")


def _ntpq(lines: list[str]) -> TimeSync:
    peer = next((ln.split()[0][1:] for ln in lines if ln.startswith("*") and ln.split()), None)
    if peer:
        return TimeSync(synchronized=True, service="ntpd", detail=f"ntpd: synchronized to {peer}")
    return TimeSync(synchronized=False, service="ntpd", detail="ntpd: no peer selected yet")


def _timedatectl(lines: list[str]) -> TimeSync:
    values = dict(ln.partition("=")[::2] for ln in lines if "=" in ln)
    ntp, synced = values.get("NTP", "?"), values.get("NTPSynchronized", "?")
    seen = f"timedatectl: NTP={ntp}, NTPSynchronized={synced}"
    service = "systemd-timesyncd" if ntp == "yes" else None
    if synced == "yes":
        return TimeSync(synchronized=True, service=service, detail=seen)
    if ntp != "yes":
        seen = f"no NTP service is enabled ({seen})"
    return TimeSync(synchronized=False, service=service, detail=seen)


def parse_time_sync(stdout: str) -> TimeSync:
    """Parse :data:`TIME_SYNC_SCRIPT` output. Pure.

    Order of trust: chrony, then ntpd (each knows its own sources), then timedatectl
    (the kernel's "synchronized" flag, set by whichever service keeps the clock).
    """
    sections, container = _sections(stdout)
    failures: list[str] = []
    for name, read in (("chronyc", _chrony), ("ntpq", _ntpq), ("timedatectl", _timedatectl)):
        if name not in sections:
            continue
        lines, rc = sections[name]
        if rc == 0:
            return read(lines)
        first = next((ln.strip() for ln in lines if ln.strip()), f"exit {rc}")
        failures.append(f"{name}: {first}")
    detail = "; ".join(failures) if failures else "no chronyc, ntpq or timedatectl on the host"
    if container != "none":
        detail += (
            f"; this host is a container ({container}): its clock is the container "
            "host's, check time sync there"
        )
    return TimeSync(synchronized=None, service=None, detail=detail)


async def time_sync(host: Host) -> TimeSync:
    """Whether the host's clock is synchronized. Read-only; never fails for a missing tool."""
    out = await host.run(["sh", "-c", TIME_SYNC_SCRIPT], label="time-sync")
    return parse_time_sync(out.stdout)


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
