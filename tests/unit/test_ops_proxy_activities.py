"""Proxy activities' decisions that need no host: pgbouncer disabled, steps sent to the
wrong host, a spec without a VIP."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from pgha.activities import haproxy, keepalived, pgbouncer
from pgha.steps import HostStep
from tests.specs import reference_spec


def step(host: str) -> HostStep:
    return HostStep(spec=reference_spec(), host=host)


async def test_pgbouncer_disabled_does_nothing_without_contacting_host() -> None:
    # The reference spec's proxies are made-up addresses: a connection attempt would fail.
    out = await ActivityEnvironment().run(pgbouncer.ensure_config, step("proxy1"))
    assert not out.changed
    assert out.summary == "pgbouncer is disabled in the spec: nothing to do"
    assert out.facts == {"enabled": False}


@pytest.mark.parametrize(
    "activity", [haproxy.ensure_config, keepalived.ensure_config, keepalived.check_vip]
)
async def test_proxy_step_on_db_host_is_non_retryable(activity: object) -> None:
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(activity, step("db1"))
    assert err.value.non_retryable
    assert "db1 (10.0.0.11) does not have role haproxy" in str(err.value)


async def test_step_for_unknown_host_is_non_retryable() -> None:
    with pytest.raises(ApplicationError, match="'nosuch' is not in cluster 'prod'"):
        await ActivityEnvironment().run(haproxy.ensure_config, step("nosuch"))
