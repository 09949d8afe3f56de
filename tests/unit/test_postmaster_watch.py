"""The host-side postmaster watcher: it reads Patroni's real config, waits for a real
process named postgres to exit, and sends a real HTTP PATCH to a local server."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from pgha.hosts.remote import postmaster_watch as watch
from pgha.render import RenderSecrets, patroni_config, postmaster_watch_files
from tests.specs import reference_spec

SECRETS = RenderSecrets(
    superuser=SecretStr("s-pw"),
    replication=SecretStr("r-pw"),
    rewind=SecretStr("w-pw"),
    patroni_restapi=SecretStr("a-pw"),
)


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.seen.append(
            {"path": self.path, "body": json.loads(body), "auth": self.headers["Authorization"]}
        )
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def patroni_api() -> Iterator[str]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def config_file(tmp_path: Path, api: str, data_dir: Path) -> Path:
    """pgha's own rendering of Patroni's config, pointed at a test API and data dir."""
    conf = yaml.safe_load(patroni_config(reference_spec(), "db1", SECRETS).content)
    conf["restapi"]["connect_address"] = api
    conf["postgresql"]["data_dir"] = str(data_dir)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(conf))
    return path


def fake_postmaster(tmp_path: Path) -> subprocess.Popen[bytes]:
    """A process whose name is postgres (a copy of sleep), as the watcher requires."""
    binary = tmp_path / "postgres"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    return subprocess.Popen([str(binary), "60"])


def test_read_target_takes_data_dir_address_and_credentials_from_patroni_config(
    tmp_path: Path,
) -> None:
    path = config_file(tmp_path, "10.0.0.11:8008", tmp_path / "data")
    target = watch.read_target(str(path))
    assert target.data_dir == str(tmp_path / "data")
    assert target.config_url == "http://10.0.0.11:8008/config"
    assert target.authorization == "Basic " + base64.b64encode(b"patroni:a-pw").decode()


@pytest.mark.parametrize(
    ("text", "pid"), [("4242\n/var/lib/x\n", 4242), ("", None), ("junk\n", None), ("1\n", None)]
)
def test_postmaster_pid_reads_the_first_line(tmp_path: Path, text: str, pid: int | None) -> None:
    (tmp_path / "postmaster.pid").write_text(text)
    assert watch.postmaster_pid(str(tmp_path)) == pid


def test_postmaster_pid_is_none_without_the_file(tmp_path: Path) -> None:
    assert watch.postmaster_pid(str(tmp_path / "nowhere")) is None


def test_wait_for_exit_ignores_a_pid_that_is_not_postgres(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        assert watch.wait_for_exit(other.pid) is False  # at once, not after 60 s
    finally:
        other.kill()
        other.wait()
    assert watch.wait_for_exit(other.pid) is False  # gone (reaped): a stale pid


def test_watch_once_wakes_patroni_when_the_postmaster_exits(
    tmp_path: Path, patroni_api: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    postmaster = fake_postmaster(tmp_path)
    (data / "postmaster.pid").write_text(f"{postmaster.pid}\n{data}\n")
    targets = watch.TargetCache(str(config_file(tmp_path, patroni_api, data)))
    threading.Timer(0.3, postmaster.kill).start()
    try:
        said = watch.watch_once(targets)
    finally:
        postmaster.kill()
        postmaster.wait()
    assert said is not None and f"postmaster {postmaster.pid} exited" in said
    assert said.endswith("HTTP 200")
    assert Recorder.seen == [
        {
            "path": "/config",
            "body": {"pgha_wake": None},
            "auth": "Basic " + base64.b64encode(b"patroni:a-pw").decode(),
        }
    ]


def test_watch_once_without_a_postmaster_returns_none_and_wakes_nobody(
    tmp_path: Path, patroni_api: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    targets = watch.TargetCache(str(config_file(tmp_path, patroni_api, data)))
    assert watch.watch_once(targets) is None
    assert Recorder.seen == []


def test_wake_reports_an_unreachable_patroni_instead_of_raising(tmp_path: Path) -> None:
    target = watch.Target(str(tmp_path), "http://127.0.0.1:9/config", None)
    assert watch.wake(target).startswith("no answer")


def test_target_cache_rereads_a_changed_config(tmp_path: Path) -> None:
    path = config_file(tmp_path, "10.0.0.11:8008", tmp_path / "a")
    targets = watch.TargetCache(str(path))
    assert targets.get().data_dir.endswith("/a")
    config_file(tmp_path, "10.0.0.11:8008", tmp_path / "b")
    assert targets.get().data_dir.endswith("/b")


def test_shipped_script_is_the_module_under_pgha_header() -> None:
    script, unit = postmaster_watch_files(reference_spec())
    source = Path(watch.__file__).read_text()
    assert script.content.startswith("# Managed by pgha") and script.content.endswith(source)
    compile(script.content, script.path, "exec")
    assert f"ExecStart=/usr/bin/python3 {script.path} /etc/patroni/config.yml" in unit.content
    assert "User=postgres" in unit.content
