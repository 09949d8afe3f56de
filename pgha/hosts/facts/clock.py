"""Facts about the clock: is it synchronized, by chrony, ntpd or systemd-timesyncd. Read-only.

Never fails because a tool is missing: "unknown" (None) with the reason is an answer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from pgha.hosts.host import Host


class TimeSync(BaseModel):
    """Whether the clock is synchronized, by which service, and what was seen.

    ``synchronized`` is None when no tool could tell (no chrony, ntpd or timedatectl that
    answers); ``detail`` then says what was tried.
    """

    model_config = ConfigDict(frozen=True)

    synchronized: bool | None
    service: str | None
    detail: str


#: Every clock tool that is present reports in its own section; the parser picks the most
#: specific answer. "## container=" tells whether the clock belongs to a container host.
#: timedatectl without --value: it prints properties in its own order, not the -p order,
#: so bare values could not be told apart. `timeout` bounds a daemon that does not answer.
TIME_SYNC_SCRIPT = r"""if command -v chronyc >/dev/null 2>&1; then
  echo '## chronyc'; timeout 10 chronyc -n tracking 2>&1; echo "## rc=$?"; fi
if command -v ntpq >/dev/null 2>&1; then
  echo '## ntpq'; timeout 10 ntpq -pn 2>&1; echo "## rc=$?"; fi
if command -v timedatectl >/dev/null 2>&1; then
  echo '## timedatectl'; timeout 10 timedatectl show -p NTPSynchronized -p NTP 2>&1
  echo "## rc=$?"; fi
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
