"""Spec data shared by the tests: the reference architecture on a made-up 10.0.0.0/24."""

from __future__ import annotations

import copy
from typing import Any

from pgha.spec import ClusterSpec, parse_spec

REFERENCE: dict[str, Any] = {
    "cluster": "prod",
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


def reference_data(cluster: str = "prod") -> dict[str, Any]:
    """A fresh, mutable copy of the reference layout's spec data."""
    data = copy.deepcopy(REFERENCE)
    data["cluster"] = cluster
    return data


def reference_spec(cluster: str = "prod") -> ClusterSpec:
    return parse_spec(reference_data(cluster), "test")
