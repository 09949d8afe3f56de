"""Host facts for preflight: parsers fed output recorded on Debian bookworm machines."""

from __future__ import annotations

from pgha.hosts.facts import system
from pgha.hosts.facts.clock import parse_time_sync
from pgha.hosts.facts.system import (
    parse_df,
    parse_init_system,
    parse_meminfo,
    parse_os_release,
    parse_ss,
)
from tests.unit.fakes import FakeHost, data


def test_parse_os_release_bookworm_reads_id_version_codename() -> None:
    r = parse_os_release(data("os_release_bookworm.txt"))
    assert (r.id, r.version_id, r.codename, r.pretty_name) == (
        "debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)",
    )  # fmt: skip


def test_parse_os_release_without_codename_reads_it_from_version() -> None:
    r = parse_os_release('NAME="Debian GNU/Linux"\nVERSION="9 (stretch)"\nID=debian\n')
    assert (r.codename, r.version_id, r.pretty_name) == ("stretch", "", "Debian GNU/Linux")


def test_parse_os_release_ubuntu_uses_ubuntu_codename_and_comments_ignored() -> None:
    r = parse_os_release("# comment\nID=ubuntu\nUBUNTU_CODENAME=noble\nVERSION_ID='24.04'\n")
    assert (r.id, r.codename, r.version_id) == ("ubuntu", "noble", "24.04")


def test_parse_meminfo_recorded_gives_mib() -> None:
    m = parse_meminfo(data("meminfo.txt"))
    assert (m.total_mb, m.available_mb) == (24684096 // 1024, 24060376 // 1024)
    assert m.swap_total_mb == 0


def test_parse_meminfo_old_kernel_sums_free_buffers_cached() -> None:
    m = parse_meminfo("MemTotal: 2048000 kB\nMemFree: 1024 kB\nBuffers: 1024 kB\nCached: 2048 kB\n")
    assert (m.total_mb, m.available_mb) == (2000, 4)


def test_parse_df_existing_path_measures_itself() -> None:
    d = parse_df(data("df_existing_path.txt"), "/var/lib/postgresql/15/main")
    assert d.measured_path == "/var/lib/postgresql/15/main"
    assert (d.filesystem, d.mount_point) == ("/dev/vda", "/")
    assert d.total_gb == round(264212084 / 1024**2, 2)
    assert d.free_gb == round(81521928 / 1024**2, 2)


def test_parse_df_missing_path_measures_nearest_parent() -> None:
    d = parse_df(data("df_missing_path.txt"), "/srv/pgha/nothing/yet")
    assert (d.path, d.measured_path) == ("/srv/pgha/nothing/yet", "/srv")


def test_parse_df_tmpfs_reads_columns() -> None:
    d = parse_df(data("df_tmpfs.txt"), "/run/lock")
    assert (d.filesystem, d.mount_point, d.free_gb) == ("tmpfs", "/run/lock", d.total_gb)


def test_parse_df_spaces_in_names_keep_columns() -> None:
    out = "/mnt/my disk\nFilesystem 1024-blocks Used Available Capacity Mounted on\n"
    out += "//nas/share x 2097152 1048576 1048576 50% /mnt/my disk\n"
    d = parse_df(out, "/mnt/my disk")
    assert (d.filesystem, d.mount_point, d.free_gb, d.total_gb) == (
        "//nas/share x", "/mnt/my disk", 1.0, 2.0,
    )  # fmt: skip


def test_parse_init_system_not_systemd_has_no_state() -> None:
    i = parse_init_system(data("init_system_not_systemd.txt"))
    assert (i.pid1, i.state, i.systemd) == ("process_api", None, False)


def test_parse_init_system_systemd_degraded_reports_state() -> None:
    i = parse_init_system(data("init_system_systemd_degraded.txt"))
    assert (i.pid1, i.state, i.systemd) == ("systemd", "degraded", True)


def test_parse_init_system_systemd_running_reports_running() -> None:
    assert parse_init_system(data("init_system_systemd_running.txt")).state == "running"


def test_parse_time_sync_container_without_systemd_is_unknown_with_reason() -> None:
    t = parse_time_sync(data("time_sync_container_no_systemd.txt"))
    assert t.synchronized is None and t.service is None
    assert t.detail == (
        "timedatectl: System has not been booted with systemd as init system (PID 1). "
        "Can't operate.; this host is a container (docker): its clock is the container "
        "host's, check time sync there"
    )


def test_parse_time_sync_no_tools_is_unknown() -> None:
    t = parse_time_sync("## container=none\n")
    assert (t.synchronized, t.detail) == (None, "no chronyc, ntpq or timedatectl on the host")


def test_parse_time_sync_chrony_down_falls_back_to_timedatectl() -> None:
    t = parse_time_sync(data("time_sync_chrony_no_daemon.txt"))
    assert t.synchronized is False and t.service is None
    assert t.detail == "no NTP service is enabled (timedatectl: NTP=no, NTPSynchronized=no)"


def test_parse_time_sync_chrony_unsynchronised_is_false() -> None:
    t = parse_time_sync(data("time_sync_chrony_unsynchronised.txt"))
    assert (t.synchronized, t.service) == (False, "chrony")
    assert t.detail == "chrony: leap status Not synchronised"


def test_parse_time_sync_chrony_local_clock_only_is_false() -> None:
    t = parse_time_sync(data("time_sync_chrony_local_clock.txt"))
    assert (t.synchronized, t.service) == (False, "chrony")
    assert "local clock" in t.detail


def test_parse_time_sync_chrony_normal_with_source_is_true() -> None:
    # The recorded unsynchronised output, as chrony prints it once it follows a server.
    out = data("time_sync_chrony_unsynchronised.txt")
    out = out.replace("00000000 ()", "A9FEA97B (169.254.169.123)").replace(
        "Not synchronised", "Normal"
    )
    t = parse_time_sync(out)
    assert (t.synchronized, t.service) == (True, "chrony")
    assert t.detail.startswith("chrony: reference A9FEA97B (169.254.169.123), stratum 0")


def test_parse_time_sync_timesyncd_synchronized_is_true() -> None:
    # Not recordable here (no synchronized timesyncd): timedatectl's key=value format.
    out = "## timedatectl\nNTP=yes\nNTPSynchronized=yes\n## rc=0\n## container=none\n"
    t = parse_time_sync(out)
    assert (t.synchronized, t.service) == (True, "systemd-timesyncd")
    assert t.detail == "timedatectl: NTP=yes, NTPSynchronized=yes"


def test_parse_time_sync_ntpq_selected_peer_is_true() -> None:
    # ntpd is not installed here: the `ntpq -pn` format, "*" marking the selected peer.
    out = (
        "## ntpq\n     remote           refid      st t when poll reach   delay   offset  jitter\n"
        "==============================================================================\n"
        "*192.0.2.10      .GPS.            1 u   33   64  377    0.311   -0.020   0.012\n"
        "## rc=0\n## container=none\n"
    )
    t = parse_time_sync(out)
    assert (t.synchronized, t.service, t.detail) == (
        True, "ntpd", "ntpd: synchronized to 192.0.2.10",
    )  # fmt: skip


def test_parse_ss_container_finds_ports_and_processes() -> None:
    found = [(x.port, x.address, x.process, x.pid) for x in parse_ss(data("ss_container.txt"))]
    assert found == [
        (8080, "127.0.0.1", "python3", 593),
        (22, "0.0.0.0", "sshd", 476),
        (22, "::", "sshd", 476),
    ]


def test_parse_ss_odd_addresses_and_no_process() -> None:
    out = (
        "LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:* "
        'users:(("systemd-resolve",pid=301,fd=14))\n'
        "LISTEN 0 128 [fe80::1]%eth0:8008 [::]:*\n"
        "LISTEN 0 511 *:80 *:* "
        'users:(("nginx",pid=12,fd=6),("nginx",pid=11,fd=6))\n'
        "LISTEN 0 128 0.0.0.0:2024 0.0.0.0:*\n"
    )
    assert [(x.port, x.address, x.process, x.pid) for x in parse_ss(out)] == [
        (53, "127.0.0.53", "systemd-resolve", 301),
        (8008, "fe80::1", None, None),
        (80, "*", "nginx", 12),
        (2024, "0.0.0.0", None, None),
    ]


async def test_cpu_count_reads_nproc() -> None:
    host = FakeHost().on("nproc", "2\n")
    assert await system.cpu_count(host) == 2
    assert host.commands == ["nproc"]


async def test_disk_free_passes_path_as_argument() -> None:
    host = FakeHost().on("pgha-disk-free", data("df_missing_path.txt"))
    d = await system.disk_free(host, "/srv/pgha/nothing/yet")
    assert d.measured_path == "/srv"
    assert host.commands[0].endswith(" pgha-disk-free /srv/pgha/nothing/yet")


async def test_time_sync_tools_missing_returns_unknown_not_error() -> None:
    host = FakeHost().on("chronyc", data("time_sync_container_no_systemd.txt"))
    t = await system.time_sync(host)
    assert t.synchronized is None and "container" in t.detail
