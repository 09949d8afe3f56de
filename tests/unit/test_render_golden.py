"""Golden files: every config pgha renders for the reference and the bare-minimum layouts.

Run with PGHA_UPDATE_GOLDEN=1 to rewrite tests/unit/golden/ after an intended change, then
review the diff like code.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from pgha import render
from pgha.render import RenderedFile, RenderSecrets
from pgha.spec import ClusterSpec, Role, parse_spec
from tests.specs import reference_data

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PGHA_UPDATE_GOLDEN") == "1"

#: Fixed fake secrets: golden files must not change from run to run.
FAKE_SECRETS = RenderSecrets(
    superuser=SecretStr("fake-superuser-pw"),
    replication=SecretStr("fake-replication-pw"),
    rewind=SecretStr("fake-rewind-pw"),
    patroni_restapi=SecretStr("fake-restapi-pw"),
    pgbouncer_auth=SecretStr("fake-pgbouncer-pw"),
    keepalived_auth=SecretStr("fakevrrp"),
)
ETCD_TOKEN = "pgha-prod-0123abcd"


def reference_with_pgbouncer() -> ClusterSpec:
    data = reference_data()
    data["pgbouncer"] = {"enabled": True}
    return parse_spec(data, "golden")


BARE_MINIMUM: dict[str, Any] = {
    "cluster": "small",
    "hosts": [
        {"name": "db1", "address": "10.0.0.11", "roles": ["postgres", "etcd"]},
        {"name": "db2", "address": "10.0.0.12", "roles": ["postgres", "etcd"]},
        {"name": "witness1", "address": "10.0.0.15", "roles": ["etcd"]},
    ],
    "backup": {"enabled": False, "schedule": {"verify_restore": None}},
}


def bare_minimum() -> ClusterSpec:
    return parse_spec(copy.deepcopy(BARE_MINIMUM), "golden")


def render_all(spec: ClusterSpec) -> dict[str, list[RenderedFile]]:
    """Every file of every host, as the provision workflow would write them."""
    out: dict[str, list[RenderedFile]] = {}
    for h in spec.hosts:
        files: list[RenderedFile] = []
        if Role.etcd in h.roles:
            files.append(render.etcd_env(spec, h.name, token=ETCD_TOKEN))
        if Role.postgres in h.roles:
            files.append(render.patroni_config(spec, h.name, FAKE_SECRETS))
            # The watcher's script is pgha/hosts/remote/postmaster_watch.py verbatim.
            files.append(render.postmaster_watch_files(spec)[1])
            if spec.backup.enabled:
                files.append(render.pgbackrest_db_conf(spec, h.name))
        if Role.haproxy in h.roles:
            files.append(render.haproxy_cfg(spec))
            files.append(render.keepalived_conf(spec, h.name, FAKE_SECRETS))
            files.append(render.keepalived_check_script(spec))
            if spec.pgbouncer.enabled:
                files.append(render.pgbouncer_ini(spec))
                files.append(render.pgbouncer_userlist(spec, FAKE_SECRETS))
                files.append(render.pgbouncer_systemd_dropin(spec))
        if Role.backup_repo in h.roles and spec.backup.enabled:
            files.append(render.pgbackrest_repo_conf(spec))
        out[h.name] = files
    return out


def expected_tree(spec: ClusterSpec) -> dict[str, str]:
    """Relative golden path -> text: each file, a manifest of modes and owners, and the
    connection strings the CLI prints."""
    tree: dict[str, str] = {}
    manifest: list[str] = []
    for host, files in render_all(spec).items():
        for f in files:
            tree[f"{host}{f.path}"] = f.content
            manifest.append(f"{host} {f.path} {f.mode_octal} {f.owner}:{f.group}")
    tree["MANIFEST"] = "\n".join(manifest) + "\n"
    cs = render.connection_strings(spec, database="app", user="app")
    tree["connection-strings"] = (
        f"read_write {cs.read_write}\nread_only {cs.read_only}\npooled {cs.pooled}\n"
    )
    return tree


SCENARIOS = {"reference": reference_with_pgbouncer, "bare-minimum": bare_minimum}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_render_golden_files_match(scenario: str) -> None:
    root = GOLDEN / scenario
    tree = expected_tree(SCENARIOS[scenario]())
    if UPDATE:
        for old in root.rglob("*"):
            if old.is_file() and str(old.relative_to(root)) not in tree:
                old.unlink()
        for rel, text in tree.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert on_disk == set(tree), "golden files differ in name; rerun with PGHA_UPDATE_GOLDEN=1"
    for rel, text in tree.items():
        assert (root / rel).read_text() == text, f"{scenario}/{rel} differs from its golden file"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_render_twice_is_byte_identical(scenario: str) -> None:
    first = render_all(SCENARIOS[scenario]())
    second = render_all(SCENARIOS[scenario]())
    assert {h: [f.sha256 for f in fs] for h, fs in first.items()} == {
        h: [f.sha256 for f in fs] for h, fs in second.items()
    }


def test_render_every_file_starts_with_the_managed_header() -> None:
    for spec in (reference_with_pgbouncer(), bare_minimum()):
        for files in render_all(spec).values():
            for f in files:
                lines = f.content.splitlines()
                first = lines[1] if lines[0].startswith("#!") else lines[0]
                assert first.endswith(
                    f"Managed by pgha (cluster {spec.cluster}); changes are overwritten."
                ), f.path
                assert f.content.endswith("\n") and not f.content.endswith("\n\n"), f.path


def test_render_bare_minimum_has_no_proxy_or_backup_files() -> None:
    files = render_all(bare_minimum())
    assert [f.path for f in files["witness1"]] == ["/etc/default/etcd"]
    paths = {f.path for fs in files.values() for f in fs}
    assert paths == {
        "/etc/default/etcd",
        "/etc/patroni/config.yml",
        "/etc/systemd/system/pgha-postmaster-watch.service",
    }


def test_render_secrets_appear_only_in_files_that_need_them() -> None:
    needs = {
        "fake-superuser-pw": {"/etc/patroni/config.yml"},
        "fake-restapi-pw": {"/etc/patroni/config.yml"},
        "fake-pgbouncer-pw": {"/etc/pgbouncer/userlist.txt"},
        "fakevrrp": {"/etc/keepalived/keepalived.conf"},
    }
    for files in render_all(reference_with_pgbouncer()).values():
        for f in files:
            for secret, allowed in needs.items():
                if f.path not in allowed:
                    assert secret not in f.content, (secret, f.path)
            if f.path in ("/etc/patroni/config.yml", "/etc/pgbouncer/userlist.txt"):
                assert f.mode == 0o600 or f.mode == 0o640
                assert f.mode & 0o007 == 0, f"{f.path} holds secrets: no access for others"
