"""The baseline of bench/restore.py: a bare `pgbackrest restore` and PostgreSQL startup of a
backup set on the repository host, written the way an operator would type it, with none of
pgha's code, so that the ratio measures pgha's overhead and not a shared slowness.

Everything runs through ``docker exec`` in the lab host's container (the bench runs on the
machine that hosts the lab), as the postgres OS user, inside one scratch directory of its
own that is removed afterwards. The copy is isolated like pgha's: archive_mode off (it can
never push WAL into the cluster's repository), no TCP listener (a Unix socket in the
scratch directory), a restore_command that can only *get* WAL.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from dataclasses import dataclass

#: The bench's scratch directory on the verify host: never pgha's own (/var/lib/pgha-verify).
SCRATCH = "/var/lib/pgha-bench"
#: Not pgha's verify port (5499): the two copies never share a socket name.
PORT = 5498
BIN = "/usr/lib/postgresql/15/bin"
#: How long startup (WAL replay to the end of the backup) may take before the bench gives up.
STARTUP_TIMEOUT_S = 1800


class ExecFailed(RuntimeError):
    """A command in a lab container exited non-zero: its output says why."""


async def run_in(container: str, script: str, *, user: str = "root", timeout: float = 3600) -> str:
    """Run a shell script in a lab container (as ``user``, from /, since postgres may not
    enter root's working directory) and return its stdout.

    :raises ExecFailed: it exited non-zero (with the tail of its stderr).
    :raises TimeoutError: it ran longer than ``timeout`` seconds.
    """
    argv = ["docker", "exec", "-w", "/", "-u", user, container, "bash", "-c", script]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        raise
    if proc.returncode != 0:
        raise ExecFailed(
            f"{container}: `{script.strip()[:120]}` exited {proc.returncode}: "
            f"{err.decode(errors='replace').strip()[-1500:]}"
        )
    return out.decode()


@dataclass(frozen=True)
class Scratch:
    """The baseline's files on the verify host, all under ``root``."""

    root: str = SCRATCH
    port: int = PORT

    @property
    def data(self) -> str:
        return f"{self.root}/data"

    @property
    def run(self) -> str:
        return f"{self.root}/run"

    @property
    def pgbackrest_conf(self) -> str:
        return f"{self.root}/pgbackrest.conf"

    @property
    def postgres_conf(self) -> str:
        return f"{self.root}/postgresql.conf"

    @property
    def hba_conf(self) -> str:
        return f"{self.root}/pg_hba.conf"

    @property
    def server_log(self) -> str:
        return f"{self.root}/log/postgresql.log"


def pgbackrest_conf(scratch: Scratch, stanza: str, repo_path: str) -> str:
    """The minimal pgBackRest config for a restore on the repository host itself: backup1's
    /etc/pgbackrest.conf lists the cluster's PostgreSQL hosts as pg1..pg3 (a restore with it
    would target them), so the baseline brings its own. Same process-max as pgha's."""
    return (
        "[global]\n"
        f"repo1-path={repo_path}\n"
        f"log-path={scratch.root}/log\n"
        f"spool-path={scratch.root}/spool\n"
        f"lock-path={scratch.root}/lock\n"
        "log-level-console=warn\n"
        "log-level-file=off\n"
        "process-max=2\n"
        "archive-async=n\n"
        f"\n[{stanza}]\n"
        f"pg1-path={scratch.data}\n"
        f"pg1-port={scratch.port}\n"
        f"pg1-socket-path={scratch.run}\n"
    )


def postgres_conf(scratch: Scratch, stanza: str) -> str:
    """The copy's whole configuration (the restored postgresql.conf, Patroni's, is ignored):
    recover to the end of the backup (``immediate``), then promote; isolated."""
    restore_command = (
        f'pgbackrest --config={scratch.pgbackrest_conf} --stanza={stanza} archive-get %f "%p"'
    )
    settings = {
        "port": str(scratch.port),
        "listen_addresses": "",
        "unix_socket_directories": scratch.run,
        "hba_file": scratch.hba_conf,
        "ident_file": f"{scratch.root}/pg_ident.conf",
        "archive_mode": "off",
        "archive_command": "",
        "primary_conninfo": "",
        "hot_standby": "off",
        "restore_command": restore_command,
        "recovery_target": "immediate",
        "recovery_target_action": "promote",
        "logging_collector": "off",
    }
    return "".join(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'\n" for k, v in settings.items())


def _heredoc(path: str, content: str) -> str:
    """A shell line writing ``content`` to ``path`` (0600) as the running user."""
    assert "EOF_BENCH" not in content
    return f"umask 077; cat > {shlex.quote(path)} <<'EOF_BENCH'\n{content}EOF_BENCH\n"


async def remove(container: str, scratch: Scratch) -> None:
    """Stop a copy left running (immediate: its data is thrown away) and delete the scratch
    directory. Idempotent: the bench calls it before and after every run."""
    if scratch.root.count("/") < 3 or not scratch.root.startswith("/var/lib/"):
        raise ValueError(f"refusing to rm -rf {scratch.root!r}")
    d = shlex.quote(scratch.data)
    await run_in(
        container,
        _STOP_RESTORE.format(conf=shlex.quote(scratch.pgbackrest_conf))
        + f"if [ -f {d}/postmaster.pid ]; then runuser -u postgres -- {BIN}/pg_ctl -D {d} "
        "-m immediate -w -t 60 stop || true; fi\n"
        f"rm -rf -- {shlex.quote(scratch.root)}",
        timeout=1800,
    )


#: A restore the bench was interrupted in keeps running in the container (docker exec does
#: not pass the client's death on), and so do its local processes: SIGTERM, by pid, every
#: pgBackRest process started with the bench's own config (none of anybody else's), and
#: wait for them, before the directory they write into is removed.
_STOP_RESTORE = """
conf={conf}
ours() {{
  for f in /proc/[0-9]*/cmdline; do
    c=$(tr '\\0' ' ' < "$f" 2>/dev/null) || continue
    case "$c" in "pgbackrest --config=$conf "*) p=${{f#/proc/}}; echo "${{p%/cmdline}}";; esac
  done
}}
for _ in $(seq 60); do
  pids=$(ours); [ -n "$pids" ] || break
  kill -TERM $pids 2>/dev/null; sleep 0.5
done
"""


async def prepare(container: str, scratch: Scratch, stanza: str, repo_path: str) -> None:
    """An empty postgres-owned scratch directory with the baseline's pgBackRest config."""
    await remove(container, scratch)
    dirs = " ".join(
        shlex.quote(f"{scratch.root}{sub}") for sub in ("", "/data", "/run", "/log", "/spool",
                                                        "/lock")
    )  # fmt: skip
    await run_in(container, f"install -d -m 0700 -o postgres -g postgres {dirs}")
    await run_in(
        container,
        _heredoc(scratch.pgbackrest_conf, pgbackrest_conf(scratch, stanza, repo_path)),
        user="postgres",
    )


async def free_bytes(container: str, path: str) -> int:
    out = await run_in(container, f"df --output=avail -B1 {shlex.quote(path)} | tail -n 1")
    return int(out.strip())


async def restore(container: str, scratch: Scratch, stanza: str, label: str) -> None:
    """`pgbackrest restore` of set ``label``; --type=none: no recovery settings written (the
    baseline writes its own, like pgha)."""
    await run_in(
        container,
        f"pgbackrest --config={scratch.pgbackrest_conf} --stanza={stanza} --set={label} "
        "--type=none restore",
        user="postgres",
    )


async def configure(container: str, scratch: Scratch, stanza: str) -> None:
    """The copy's config and pg_hba (only the postgres OS user, over the scratch socket);
    the restored postgresql.auto.conf emptied (it is read from the data directory whatever
    config_file says, and could turn archiving back on); recovery.signal."""
    d = shlex.quote(scratch.data)
    await run_in(
        container,
        _heredoc(scratch.postgres_conf, postgres_conf(scratch, stanza))
        + _heredoc(scratch.hba_conf, "local all postgres peer\n")
        + f": > {shlex.quote(scratch.root)}/pg_ident.conf\n"
        + f"cd {d} && rm -f standby.signal && : > postgresql.auto.conf && touch recovery.signal",
        user="postgres",
    )


#: Waits until the copy accepts connections and is out of recovery; exit 3 if it died.
_WAIT = """
deadline=$(( $(date +%s) + {timeout} ))
until [ "$({bin}/psql -X -A -t -h {run} -p {port} -d postgres \\
        -c 'SELECT pg_catalog.pg_is_in_recovery()' 2>/dev/null)" = f ]; do
  {bin}/pg_ctl -D {data} status >/dev/null || {{ tail -n 20 {log} >&2; exit 3; }}
  [ "$(date +%s)" -lt "$deadline" ] || {{ echo "not promoted in {timeout} s" >&2; exit 4; }}
  sleep 0.1
done
grep -c 'restored log file' {log} || true
"""


async def start_and_wait(container: str, scratch: Scratch) -> int:
    """Start the copy, wait until recovery reached the end of the backup, promoted, and the
    server accepts connections (polled every 0.1 s, inside the container).

    :returns: WAL segments restore_command fetched from the repository.
    """
    d, log = shlex.quote(scratch.data), shlex.quote(scratch.server_log)
    # -w returns at "standby" (hot_standby off): the loop below waits for the promotion.
    await run_in(
        container,
        f"{BIN}/pg_ctl -D {d} -l {log} -w -t {STARTUP_TIMEOUT_S} "
        f"-o '-c config_file={scratch.postgres_conf}' start >/dev/null",
        user="postgres",
        timeout=STARTUP_TIMEOUT_S + 60,
    )
    script = _WAIT.format(
        bin=BIN, run=shlex.quote(scratch.run), port=scratch.port, data=d, log=log,
        timeout=STARTUP_TIMEOUT_S,
    )  # fmt: skip
    out = await run_in(container, script, user="postgres", timeout=STARTUP_TIMEOUT_S + 60)
    return int(out.split()[-1] or 0)


async def data_bytes(container: str, scratch: Scratch) -> int:
    out = await run_in(container, f"du -sb {shlex.quote(scratch.data)}", timeout=600)
    return int(out.split()[0])


@dataclass(frozen=True)
class BareRun:
    """Seconds of each part of the baseline, and what it restored."""

    restore_s: float
    configure_s: float
    startup_s: float
    teardown_s: float
    wal_segments: int
    restored_bytes: int

    @property
    def total_s(self) -> float:
        """Restore to a promoted server accepting connections (what the ratio divides by)."""
        return self.restore_s + self.configure_s + self.startup_s


async def bare_restore(
    container: str, stanza: str, label: str, repo_path: str, need_bytes: int
) -> BareRun:
    """Restore set ``label`` on the repository host's container and start it; always stop it
    and remove the scratch directory, whatever happens.

    :raises ExecFailed: a step failed, or the scratch filesystem has less than
        ``need_bytes`` free.
    """
    scratch = Scratch()
    try:
        await prepare(container, scratch, stanza, repo_path)
        room = await free_bytes(container, scratch.root)
        if room < need_bytes:
            raise ExecFailed(
                f"{container}: {scratch.root} has {room / 2**30:.1f} GiB free, the restore "
                f"needs about {need_bytes / 2**30:.1f} GiB"
            )
        t0 = time.monotonic()
        await restore(container, scratch, stanza, label)
        t1 = time.monotonic()
        await configure(container, scratch, stanza)
        t2 = time.monotonic()
        segments = await start_and_wait(container, scratch)
        t3 = time.monotonic()
        size = await data_bytes(container, scratch)
    finally:
        t4 = time.monotonic()
        await remove(container, scratch)
        teardown_s = time.monotonic() - t4
    return BareRun(
        restore_s=round(t1 - t0, 2),
        configure_s=round(t2 - t1, 2),
        startup_s=round(t3 - t2, 2),
        teardown_s=round(teardown_s, 2),
        wal_segments=segments,
        restored_bytes=size,
    )
