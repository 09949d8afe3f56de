"""Facts about an etcd member and its cluster, as the host and etcdctl (v3 API) report them.

Read-only: changes nothing. Parsers are pure and tested on recorded output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from pgha.hosts.facts.systemd import UnitState, unit_state
from pgha.hosts.host import Host

ETCD_UNIT = "etcd"
#: Where Debian's etcd.service keeps data when /etc/default/etcd does not say otherwise:
#: the package's postinst starts a throw-away single-member cluster there.
DEBIAN_DEFAULT_DATA_DIR = "/var/lib/etcd/default"
#: Short, so that a dead member costs a read seconds, not etcdctl's 5 s default per call.
DIAL_TIMEOUT = "2s"
COMMAND_TIMEOUT = "4s"

DirState = Literal["absent", "empty", "initialized", "other"]
#: ``stock``: only comments (as the package ships it); ``pgha``: written by pgha for this
#: cluster; ``foreign``: settings someone else wrote (or pgha for another cluster).
EnvState = Literal["absent", "stock", "pgha", "foreign"]

#: One round trip: $1 data dir, $2 marker file, $3 env file, $4 Debian's default data dir.
#: A data dir is "initialized" once etcd created its member/ directory in it.
LOCAL_STATE_SCRIPT = r"""dir_state() {
  if [ -d "$1/member" ]; then echo initialized
  elif [ ! -e "$1" ]; then echo absent
  elif [ -z "$(ls -A -- "$1" 2>/dev/null)" ]; then echo empty
  else echo other; fi
}
printf 'data\t%s\n' "$(dir_state "$1")"
printf 'default\t%s\n' "$(dir_state "$4")"
if [ -f "$2" ]; then printf 'marker\t%s\n' "$(head -c 256 -- "$2" | head -n 1)"; fi
if [ -f "$3" ]; then
  printf 'env_head\t%s\n' "$(head -n 1 -- "$3")"
  if grep -q -v -E '^[[:space:]]*(#|$)' -- "$3"; then printf 'env_settings\tyes\n'; fi
  printf 'env_token\t%s\n' "$(sed -n 's/^ETCD_INITIAL_CLUSTER_TOKEN=//p' -- "$3" | head -n 1)"
fi
"""


class LocalState(BaseModel):
    """What is on one etcd host, whatever etcd itself is doing.

    ``marker`` is the cluster token pgha recorded once this member was healthy in its
    cluster ("" when none); ``env_token`` the token in /etc/default/etcd.
    """

    model_config = ConfigDict(frozen=True)

    data_dir: DirState
    default_dir: DirState
    marker: str
    env: EnvState
    env_token: str
    unit: UnitState


class Health(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint: str
    healthy: bool
    error: str = ""


class Member(BaseModel):
    """One entry of ``etcdctl member list``; a member added but never started has no name."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    peer_urls: list[str]
    client_urls: list[str]


def _dir_state(value: str) -> DirState:
    if value in ("absent", "empty", "initialized", "other"):
        return value  # type: ignore[return-value]
    raise ValueError(f"unexpected directory state {value!r}")


def parse_local_state(stdout: str, unit: UnitState, managed_header: str) -> LocalState:
    """Parse :data:`LOCAL_STATE_SCRIPT` output. Pure.

    :param managed_header: the first line pgha writes into this cluster's files.
    :raises ValueError: on output the script cannot produce.
    """
    fields: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            fields[key] = value.strip()
    if "data" not in fields or "default" not in fields:
        raise ValueError(f"unexpected etcd state output: {stdout[:200]!r}")
    env: EnvState = "absent"
    if "env_head" in fields:
        if fields["env_head"] == managed_header:
            env = "pgha"
        elif fields.get("env_settings") == "yes":
            env = "foreign"
        else:
            env = "stock"
    return LocalState(
        data_dir=_dir_state(fields["data"]),
        default_dir=_dir_state(fields["default"]),
        marker=fields.get("marker", ""),
        env=env,
        env_token=fields.get("env_token", ""),
        unit=unit,
    )


async def local_state(
    host: Host, *, data_dir: str, marker_path: str, env_path: str, managed_header: str
) -> LocalState:
    """Data directories, marker, env file and unit of the etcd member on ``host``. Read-only."""
    script = ["sh", "-c", LOCAL_STATE_SCRIPT, "pgha-etcd-state"]
    out = await host.run(
        [*script, data_dir, marker_path, env_path, DEBIAN_DEFAULT_DATA_DIR], label="etcd-state"
    )
    unit = await unit_state(host, ETCD_UNIT)
    return parse_local_state(out.stdout, unit, managed_header)


def etcdctl(endpoints: Sequence[str], *args: str) -> list[str]:
    """An etcdctl v3 command line against ``endpoints`` with pgha's short timeouts."""
    return [
        "env", "ETCDCTL_API=3", "etcdctl", f"--endpoints={','.join(endpoints)}",
        f"--dial-timeout={DIAL_TIMEOUT}", f"--command-timeout={COMMAND_TIMEOUT}", *args,
    ]  # fmt: skip


def _json(stdout: str) -> Any:
    """The JSON document etcdctl printed; None when it printed none (it died early)."""
    text = stdout.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_health(stdout: str, endpoints: Sequence[str]) -> list[Health]:
    """Parse ``endpoint health -w json``. Pure. An endpoint etcdctl did not report on
    (it failed before printing) counts as unhealthy."""
    seen: dict[str, Health] = {}
    for item in _json(stdout) or []:
        if isinstance(item, dict) and "endpoint" in item:
            seen[str(item["endpoint"])] = Health(
                endpoint=str(item["endpoint"]),
                healthy=bool(item.get("health")),
                error=str(item.get("error") or ""),
            )
    return [seen.get(e) or Health(endpoint=e, healthy=False, error="no answer") for e in endpoints]


def parse_member_list(stdout: str) -> list[Member]:
    """Parse ``member list -w json``. Pure.

    :raises ValueError: the output is not a member list.
    """
    doc = _json(stdout)
    if not isinstance(doc, dict) or not isinstance(doc.get("members"), list):
        raise ValueError(f"not an etcd member list: {stdout[:200]!r}")
    return [
        Member(
            id=int(m["ID"]),
            name=str(m.get("name") or ""),
            peer_urls=[str(u) for u in m.get("peerURLs") or []],
            client_urls=[str(u) for u in m.get("clientURLs") or []],
        )
        for m in doc["members"]
    ]


def parse_version(stdout: str) -> str:
    """The server version from ``endpoint status -w json`` (first endpoint), "" when none
    answered. Pure."""
    for item in _json(stdout) or []:
        version = (item.get("Status") or {}).get("version") if isinstance(item, dict) else None
        if version:
            return str(version)
    return ""


def parse_leader(stdout: str) -> int | None:
    """The leader's member id from ``endpoint status -w json`` (first endpoint that says). Pure."""
    for item in _json(stdout) or []:
        leader = (item.get("Status") or {}).get("leader") if isinstance(item, dict) else None
        if leader:
            return int(leader)
    return None


async def health(host: Host, endpoints: Sequence[str]) -> list[Health]:
    """Health of each endpoint, asked from ``host``. Read-only; never raises for an
    unhealthy or unreachable member, nor when etcdctl is not installed (all unhealthy)."""
    out = await host.run(
        etcdctl(endpoints, "endpoint", "health", "-w", "json"), check=False, label="etcdctl"
    )
    found = parse_health(out.stdout, endpoints)
    if out.exit_code == 127:
        return [h.model_copy(update={"error": "etcdctl is not installed"}) for h in found]
    return found


async def member_list(host: Host, endpoints: Sequence[str]) -> list[Member] | None:
    """The members as the cluster behind ``endpoints`` lists them; None when no endpoint
    answered. Read-only."""
    out = await host.run(etcdctl(endpoints, "member", "list", "-w", "json"), check=False,
                         label="etcdctl")  # fmt: skip
    if out.exit_code != 0:
        return None
    return parse_member_list(out.stdout)


async def leader_id(host: Host, endpoints: Sequence[str]) -> int | None:
    """The current leader's member id, or None when no endpoint knows one. Read-only."""
    out = await host.run(etcdctl(endpoints, "endpoint", "status", "-w", "json"), check=False,
                         label="etcdctl")  # fmt: skip
    return parse_leader(out.stdout)


async def server_version(host: Host, endpoints: Sequence[str]) -> str:
    """What the etcd behind ``endpoints`` runs ("3.4.23"), "" when it does not answer.
    Read-only: the running binary, which a package upgrade changes only after a restart."""
    out = await host.run(etcdctl(endpoints, "endpoint", "status", "-w", "json"), check=False,
                         label="etcdctl")  # fmt: skip
    return parse_version(out.stdout)
