"""Specs for the workflow tests (the dev server fixture `env` is in tests/conftest.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pgha.spec import ClusterSpec, parse_spec

HERE = Path(__file__).parent


def lab_like_spec(cluster: str = "wf") -> ClusterSpec:
    data = {
        "cluster": cluster,
        "hosts": [
            {"name": "db1", "address": "10.0.0.11", "roles": ["postgres", "etcd"]},
            {"name": "db2", "address": "10.0.0.12", "roles": ["postgres", "etcd"]},
            {"name": "db3", "address": "10.0.0.13", "roles": ["postgres", "etcd"]},
            {"name": "proxy1", "address": "10.0.0.21", "roles": ["haproxy"]},
            {"name": "proxy2", "address": "10.0.0.22", "roles": ["haproxy"]},
            {"name": "backup1", "address": "10.0.0.31", "roles": ["backup-repo", "verify-target"]},
        ],
        "vip": {"address": "10.0.0.100/24"},
    }
    return parse_spec(data, "test")


@pytest.fixture
def spec() -> ClusterSpec:
    return lab_like_spec(f"wf-{uuid.uuid4().hex[:8]}")
