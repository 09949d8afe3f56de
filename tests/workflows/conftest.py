"""Specs for the workflow tests (the dev server fixture `env` is in tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest

from pgha.spec import ClusterSpec
from tests.specs import reference_spec


@pytest.fixture
def spec() -> ClusterSpec:
    return reference_spec(f"wf-{uuid.uuid4().hex[:8]}")
