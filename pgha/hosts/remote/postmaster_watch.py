"""Runs ON every PostgreSQL host as the postgres OS user, as the systemd service
pgha-postmaster-watch: wakes Patroni's HA loop the moment PostgreSQL's postmaster exits.

Why: Patroni notices a dead postmaster only at its next HA cycle, up to loop_wait seconds
later (10 by default). A primary killed right after a cycle stays down that long before
Patroni even starts to restart it; this watcher cuts that wait to milliseconds.

How:
  - read Patroni's own config (data_dir, REST address and credentials) each round, so a
    changed password or data directory is picked up without a restart of this service;
  - take the postmaster's PID from postmaster.pid and wait for that process to end with a
    pidfd (Linux 5.3+): no polling, no CPU while PostgreSQL runs;
  - then send Patroni a PATCH /config that changes nothing ({"pgha_wake": null} removes a
    key that does not exist). Patroni 3.0's handler writes nothing to the DCS for an empty
    change and calls ha.wakeup(), which starts the next HA cycle at once; that is the same
    wake-up Patroni gives itself after every REST action.
A wake-up after a stop that Patroni made itself (switchover, restart) costs one extra HA
cycle and nothing else. Only the standard library and PyYAML (a Patroni dependency).
Usage: python3 postmaster_watch.py /etc/patroni/config.yml
"""

from __future__ import annotations

import base64
import json
import os
import select
import sys
import time
import urllib.error
import urllib.request
from typing import Any, NamedTuple

import yaml

#: Seconds between looks for a postmaster when none runs (stopped, starting, crashed).
IDLE_S = 0.2
#: Seconds the wake-up request may take; Patroni answers in milliseconds when healthy.
WAKE_TIMEOUT_S = 3.0


class Target(NamedTuple):
    data_dir: str
    config_url: str
    authorization: str | None


def read_target(config_path: str) -> Target:
    """Where to look for the postmaster and whom to wake, from Patroni's config file."""
    with open(config_path, encoding="utf-8") as f:
        config: dict[str, Any] = yaml.safe_load(f)
    api = config["restapi"]
    address = api.get("connect_address") or api["listen"]
    auth = api.get("authentication") or {}
    authorization = None
    if auth.get("username"):
        token = f"{auth['username']}:{auth.get('password', '')}".encode()
        authorization = "Basic " + base64.b64encode(token).decode()
    return Target(config["postgresql"]["data_dir"], f"http://{address}/config", authorization)


def postmaster_pid(data_dir: str) -> int | None:
    """The PID in postmaster.pid, or None when there is no such file (PostgreSQL stopped)."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid"), encoding="utf-8") as f:
            first = f.readline().strip()
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return None
    return int(first) if first.isdigit() and int(first) > 1 else None


def is_postgres(pid: int) -> bool:
    """Is ``pid`` a PostgreSQL process? A stale postmaster.pid may name a reused PID."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as f:
            return f.read().strip() == "postgres"
    except OSError:
        return False


def wait_for_exit(pid: int) -> bool:
    """Block until PostgreSQL process ``pid`` ends. False when there is no such process
    (a stale postmaster.pid after a crash, or its PID now belongs to another program)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        # Checked after the pidfd pins the process, so the PID cannot change owner between.
        if not is_postgres(pid):
            return False
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll():
            pass
    finally:
        os.close(fd)
    return True


def wake(target: Target) -> str:
    """Ask Patroni for an HA cycle now. Returns what Patroni answered, for the journal."""
    request = urllib.request.Request(
        target.config_url,
        data=json.dumps({"pgha_wake": None}).encode(),
        method="PATCH",
        headers={"Content-Type": "application/json"},
    )
    if target.authorization:
        request.add_header("Authorization", target.authorization)
    try:
        with urllib.request.urlopen(request, timeout=WAKE_TIMEOUT_S) as response:
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except OSError as err:  # Patroni down or busy: it will see the dead postmaster itself
        return f"no answer ({err})"


class TargetCache:
    """Patroni's config, parsed again only when the file changes: while PostgreSQL is down
    the watcher looks five times a second, and parsing YAML each time would cost CPU."""

    def __init__(self, config_path: str) -> None:
        self.path = config_path
        self._stamp: tuple[int, int] | None = None
        self._target: Target | None = None

    def get(self) -> Target:
        st = os.stat(self.path)
        stamp = (st.st_mtime_ns, st.st_ino)
        if self._target is None or stamp != self._stamp:
            self._target, self._stamp = read_target(self.path), stamp
        return self._target


def watch_once(targets: TargetCache) -> str | None:
    """Wait for the current postmaster to exit and wake Patroni. None when no postmaster
    ran (the caller sleeps briefly and looks again)."""
    target = targets.get()
    pid = postmaster_pid(target.data_dir)
    if pid is None or not wait_for_exit(pid):
        return None
    return f"postmaster {pid} exited; woke Patroni at {target.config_url}: {wake(target)}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: postmaster_watch.py PATRONI_CONFIG", file=sys.stderr)
        return 2
    targets = TargetCache(argv[1])
    while True:
        try:
            said = watch_once(targets)
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as err:
            said = None
            print(f"cannot watch: {err!r}; looking again", file=sys.stderr, flush=True)
            time.sleep(1.0)
        if said:
            print(said, flush=True)
        time.sleep(IDLE_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
