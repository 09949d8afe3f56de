"""The lab image recipe: its tag follows the content, and it keeps the promises callers rely on."""

from __future__ import annotations

import re

from pgha.lab.image import DOCKERFILE, FILES, image_tag, recipe_hash


def test_image_tag_is_recipe_hash_prefix() -> None:
    assert re.fullmatch(r"pgha-lab:[0-9a-f]{12}", image_tag())
    assert image_tag().endswith(recipe_hash()[:12])


def test_recipe_hash_is_stable() -> None:
    assert recipe_hash() == recipe_hash()


def test_dockerfile_stops_systemd_cleanly_and_ships_no_identity() -> None:
    text = DOCKERFILE.read_text()
    assert "STOPSIGNAL SIGRTMIN+3" in text
    assert "rm -f /etc/ssh/ssh_host_*" in text
    assert ": > /etc/machine-id" in text
    instructions = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in instructions if "postgres" in line.lower()]


def test_dockerfile_configures_bookworm_security() -> None:
    text = DOCKERFILE.read_text()
    assert "bookworm bookworm-updates" in text and "bookworm-security" in text


def test_sshd_config_forbids_root_passwords() -> None:
    text = (FILES / "sshd-pgha-lab.conf").read_text()
    assert "PermitRootLogin prohibit-password" in text
    assert "PasswordAuthentication no" in text
