"""pgBackRest activities' input checks, which fail before any host is contacted: the peers
the workflow passes to ensure_trust, and steps sent to the wrong host."""

from __future__ import annotations

import json

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from pgha.activities import pgbackrest as act
from pgha.render.pgbackrest import REPO_USER
from pgha.steps import HostStep
from tests.specs import reference_spec

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGDSobDDdF5ExEpB3HkWmM/RDlNpqQ2ApGXzd8bmQEVY"


def fact(host: str, user: str, address: str = "10.0.0.11") -> dict[str, str]:
    return {"host": host, "address": address, "user": user, "public_key": PUB, "host_key": PUB}


def step(host: str, **params: str) -> HostStep:
    return HostStep(spec=reference_spec(), host=host, params=params)


def test_peers_of_repo_host_are_postgres_hosts_with_spec_addresses() -> None:
    # The address a peer reports is ignored: from= and known_hosts use the spec's.
    peers = act._peers(
        step("backup1", peers=json.dumps([fact("db2", "postgres", "1.2.3.4")])), True
    )
    assert [(p.host, addr, port) for p, addr, port in peers] == [("db2", "10.0.0.12", 22)]


def test_peers_of_db_host_must_be_repo_user_on_repo_host() -> None:
    ok = act._peers(step("db1", peers=json.dumps([fact("backup1", REPO_USER)])), False)
    assert ok[0][1] == "10.0.0.31"
    with pytest.raises(ValueError, match="is not a backup-repo host"):
        act._peers(step("db1", peers=json.dumps([fact("db2", "postgres")])), False)


def test_peers_wrong_user_or_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="with user postgres"):
        act._peers(step("backup1", peers=json.dumps([fact("db1", "root")])), True)
    with pytest.raises(ValueError, match="JSON list"):
        act._peers(step("backup1", peers=json.dumps({"host": "db1"})), True)
    with pytest.raises(ValueError):  # pydantic: an unknown key or a missing one
        act._peers(step("backup1", peers=json.dumps([{"host": "db1"}])), True)


async def test_ensure_trust_without_peers_is_non_retryable() -> None:
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(act.ensure_trust, step("backup1"))
    assert err.value.non_retryable and "params['peers']" in str(err.value)


async def test_ensure_keypair_on_proxy_is_non_retryable_invalid_spec() -> None:
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(act.ensure_keypair, step("proxy1"))
    assert err.value.non_retryable and err.value.type == "InvalidSpec"
    assert "proxy1 (10.0.0.21) does not have role postgres" in str(err.value)


async def test_ensure_stanza_on_db_host_is_refused() -> None:
    with pytest.raises(ApplicationError, match="does not have role backup-repo"):
        await ActivityEnvironment().run(act.ensure_stanza, step("db1"))
