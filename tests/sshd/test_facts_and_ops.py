"""Facts and converge ops against a real OpenSSH sshd on loopback (the local machine)."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgha.errors import CommandFailed
from pgha.hosts.facts import files as file_facts
from pgha.hosts.facts import packages as package_facts
from pgha.hosts.facts import system
from pgha.hosts.host import connect
from pgha.hosts.ops import files, packages
from pgha.models import HostTarget

pytestmark = pytest.mark.sshd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- ops ------------------------------------------------------------------------------------


async def test_ensure_file_real_host_second_call_unchanged(
    sshd: HostTarget, tmp_path: Path
) -> None:
    path = tmp_path / "conf" / "app.conf"
    path.parent.mkdir()
    async with connect(sshd) as host:
        first = await files.ensure_file(host, str(path), "a = 1\n", mode=0o640)
        second = await files.ensure_file(host, str(path), "a = 1\n", mode=0o640)
        third = await files.ensure_file(host, str(path), "a = 1\n", mode=0o600)
    assert first.changed and first.summary.startswith("created")
    assert path.read_text() == "a = 1\n"
    assert not second.changed
    assert second.summary == f"{path} already has the wanted content, mode and owner"
    assert third.changed and third.commands == [f"chmod 0600 {path}"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["app.conf"]  # no temp file left


async def test_ensure_file_real_host_bytes_and_owner(sshd: HostTarget, tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 4
    owner = "nobody" if os.geteuid() == 0 else None
    async with connect(sshd) as host:
        if owner:
            out = await files.ensure_file(host, str(path), data, owner="nobody", group="nogroup")
        else:
            out = await files.ensure_file(
                host, str(path), data, owner=str(os.getuid()), group=str(os.getgid())
            )
        again = await files.ensure_file(
            host,
            str(path),
            data,
            owner=owner or str(os.getuid()),
            group="nogroup" if owner else str(os.getgid()),
        )
    assert out.changed and path.read_bytes() == data
    assert not again.changed
    if owner:
        assert path.owner() == "nobody"


async def test_ensure_file_real_host_replaces_content_atomically(
    sshd: HostTarget, tmp_path: Path
) -> None:
    path = tmp_path / "x.conf"
    path.write_text("old\n")
    inode = path.stat().st_ino
    async with connect(sshd) as host:
        out = await files.ensure_file(host, str(path), "new\n")
    assert out.changed and out.summary.startswith("rewrote")
    assert path.read_text() == "new\n"
    assert path.stat().st_ino != inode  # renamed over, not written in place


async def test_ensure_directory_real_host_creates_then_noop(
    sshd: HostTarget, tmp_path: Path
) -> None:
    path = tmp_path / "a" / "b"
    async with connect(sshd) as host:
        first = await files.ensure_directory(host, str(path), mode=0o700)
        second = await files.ensure_directory(host, str(path), mode=0o700)
    assert first.changed and path.is_dir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert not second.changed


async def test_ensure_packages_real_host_installed_is_noop(sshd: HostTarget) -> None:
    async with connect(sshd) as host:
        out = await packages.ensure_packages(host, {"openssh-server": None})
    assert not out.changed
    assert out.summary.startswith("all wanted packages are installed: openssh-server=")


# --- facts ----------------------------------------------------------------------------------


async def test_facts_real_host_match_local_machine(sshd: HostTarget) -> None:
    async with connect(sshd) as host:
        os_rel, cpus, mem, init, clock = await asyncio.gather(
            system.os_release(host),
            system.cpu_count(host),
            system.memory(host),
            system.init_system(host),
            system.time_sync(host),
        )
    local = system.parse_os_release(Path("/etc/os-release").read_text())
    assert os_rel == local and os_rel.id
    assert cpus == len(os.sched_getaffinity(0))
    assert 0 < mem.available_mb <= mem.total_mb
    assert init.pid1 == Path("/proc/1/comm").read_text().strip()
    assert (init.state is not None) == (init.pid1 == "systemd")
    assert clock.detail  # None, True or False, but always says why


async def test_disk_free_real_host_missing_path_measures_parent(
    sshd: HostTarget, tmp_path: Path
) -> None:
    async with connect(sshd) as host:
        d = await system.disk_free(host, str(tmp_path / "not" / "yet"))
    assert d.path == str(tmp_path / "not" / "yet")
    assert d.measured_path == str(tmp_path)
    assert 0 < d.free_gb <= d.total_gb


async def test_listening_ports_real_host_finds_test_sshd(sshd: HostTarget) -> None:
    async with connect(sshd) as host:
        listeners = await system.listening_ports(host)
    mine = [x for x in listeners if x.port == sshd.port]
    assert [(x.address, x.process) for x in mine] == [("127.0.0.1", "sshd")]


@pytest.fixture(scope="module")
def apt_index_targets() -> set[tuple[str, str]]:
    """(URI, suite) of every Packages index apt itself would fetch on this machine."""
    listed = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)", "Created-By: Packages"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {(u.rstrip("/"), s) for u, s in (line.split() for line in listed.splitlines() if line)}


async def test_apt_sources_real_host_parses_this_machine(
    sshd: HostTarget, apt_index_targets: set[tuple[str, str]]
) -> None:
    async with connect(sshd) as host:
        sources = await system.apt_sources(host)
    debs = {(s.uri.rstrip("/"), s.suite) for s in sources if s.type == "deb"}
    assert apt_index_targets <= debs


@pytest.fixture(scope="module")
def openssh_version() -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "openssh-server"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


async def test_file_state_and_packages_real_host(
    sshd: HostTarget, tmp_path: Path, openssh_version: str
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    path.chmod(0o4750)
    async with connect(sshd) as host:
        st = await file_facts.file_state(host, str(path))
        versions = await package_facts.installed_packages(
            host, ["openssh-server", "nosuch-pgha-package"]
        )
    assert (st.kind, st.mode, st.size) == ("file", 0o4750, 3)
    assert st.sha256 == hashlib.sha256(b"abc").hexdigest()
    assert versions == {"openssh-server": openssh_version, "nosuch-pgha-package": None}


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "InRelease").write_text("Origin: pgha test\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(tmp_path), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_url_reachable_real_host_through_apt(sshd: HostTarget, http_server: str) -> None:
    missing = f"http://127.0.0.1:{free_port()}/dists/bookworm/InRelease"
    async with connect(sshd) as host:
        ok, absent, closed = await asyncio.gather(
            system.url_reachable(host, f"{http_server}/InRelease"),
            system.url_reachable(host, f"{http_server}/nope/InRelease"),
            system.url_reachable(host, missing, timeout=5),
        )
        leftovers = await host.run("ls -d /tmp/pgha-apt-probe.* 2>/dev/null", check=False)
    assert ok.reachable and ok.detail.startswith("Fetched ")
    assert not absent.reachable and absent.detail.startswith("404")
    assert not closed.reachable and "Connection refused" in closed.detail
    assert leftovers.stdout == ""


async def test_ensure_file_real_host_directory_in_the_way_raises_command_failed(
    sshd: HostTarget, tmp_path: Path
) -> None:
    (tmp_path / "conf").mkdir()
    async with connect(sshd) as host:
        with pytest.raises(CommandFailed, match="cannot overwrite directory"):
            await files.ensure_file(host, str(tmp_path / "conf"), "x")
        with pytest.raises(CommandFailed, match="No such file or directory"):
            await files.ensure_file(host, str(tmp_path / "missing" / "x.conf"), "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]  # no temp file left
    assert list((tmp_path / "conf").iterdir()) == []


async def test_file_state_real_host_symlinks_follow_or_not(
    sshd: HostTarget, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "data")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    async with connect(sshd) as host:
        link, followed, dangling, dangling_followed = await asyncio.gather(
            file_facts.file_state(host, str(tmp_path / "link")),
            file_facts.file_state(host, str(tmp_path / "link"), follow=True),
            file_facts.file_state(host, str(tmp_path / "dangling")),
            file_facts.file_state(host, str(tmp_path / "dangling"), follow=True),
        )
        again = await files.ensure_directory(host, str(tmp_path / "link"), mode=0o700)
    assert (link.kind, followed.kind, followed.mode) == ("symlink", "directory", 0o700)
    assert (dangling.kind, dangling_followed.exists) == ("symlink", False)
    assert not again.changed
