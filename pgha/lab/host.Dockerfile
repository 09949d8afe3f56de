# pgha lab host: Debian bookworm, systemd as PID 1, sshd. No PostgreSQL: pgha installs it.
# Built by pgha/lab/image.py from a debootstrap rootfs (or a local debian:bookworm image).
ARG BASE=pgha-lab-base:bookworm
FROM ${BASE}

ENV container=docker
ARG DEBIAN_FRONTEND=noninteractive

# bookworm main has postgresql-15 15.18 and bookworm-security 15.20: the minor-upgrade
# drills need both suites, so both are configured here rather than by provisioning.
RUN rm -f /etc/apt/sources.list /etc/apt/sources.list.d/* \
 && printf '%s\n' \
    'Types: deb' \
    'URIs: http://deb.debian.org/debian' \
    'Suites: bookworm bookworm-updates' \
    'Components: main' \
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
    '' \
    'Types: deb' \
    'URIs: http://deb.debian.org/debian-security' \
    'Suites: bookworm-security' \
    'Components: main' \
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
    > /etc/apt/sources.list.d/debian.sources

# A no-op on the debootstrap base (already included); needed on a registry debian:bookworm.
# The package lists are dropped: provisioning runs apt-get update itself.
RUN apt-get update \
 && apt-get install -y --no-install-recommends systemd systemd-sysv dbus openssh-server \
    iproute2 python3 sudo ca-certificates procps iputils-ping less \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

COPY sshd-pgha-lab.conf /etc/ssh/sshd_config.d/pgha-lab.conf

# Units that need hardware, a console or a writable /proc/sys, none of which a container
# has; left alone they fail and keep `systemctl is-system-running` at "degraded".
RUN systemctl enable ssh.service \
 && systemctl mask getty.target console-getty.service getty@tty1.service \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-udev-trigger.service systemd-udev-settle.service \
    systemd-modules-load.service systemd-remount-fs.service systemd-firstboot.service \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
    sys-fs-fuse-connections.mount dev-hugepages.mount proc-sys-fs-binfmt_misc.automount

# Every lab host gets its own host key and machine-id from `pgha lab up` (docker cp before
# the first start); an image-wide key would make known_hosts unable to tell hosts apart.
RUN rm -f /etc/ssh/ssh_host_* \
 && : > /etc/machine-id \
 && rm -f /var/lib/dbus/machine-id \
 && ln -s /etc/machine-id /var/lib/dbus/machine-id

# systemd shuts down cleanly on SIGRTMIN+3 (`docker stop`); `pgha lab power off` uses
# `docker kill` instead, on purpose.
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
