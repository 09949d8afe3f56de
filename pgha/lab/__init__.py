"""The local lab: docker containers with systemd and sshd that pgha treats as real hosts."""
