"""lab up's per-host decision: keep, start, create or recreate a container (docker faked)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

import pytest

from pgha.lab import containers as ct
from pgha.lab.hosts import Action, _ensure_host
from pgha.lab.layout import LabHostPlan
from pgha.spec import Role

PLAN = LabHostPlan(name="db1", address=ipaddress.IPv4Address("10.77.0.11"), roles=[Role.postgres])
IMAGE = "pgha-lab:aaaaaaaaaaaa"
KEY = "ssh-ed25519 AAAAexisting root@db1"


class FakeDocker:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, key: str | None = KEY) -> None:
        self.calls: list[str] = []
        self.key = key

        async def read_host_key(host: str) -> str | None:
            return self.key

        def record(verb: str) -> Callable[..., Awaitable[None]]:
            async def op(*args: object) -> None:
                self.calls.append(verb)

            return op

        monkeypatch.setattr(ct, "read_host_key", read_host_key)
        for verb in ("start_container", "unpause_container", "remove_container",
                     "create_container"):  # fmt: skip
            monkeypatch.setattr(ct, verb, record(verb))


def _have(state: str, image: str = IMAGE, address: str = "10.77.0.11") -> ct.Container:
    return ct.Container(host="db1", container="pgha-lab-db1", address=address, image=image,
                        state=state)  # fmt: skip


async def test_ensure_host_running_current_image_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDocker(monkeypatch)
    assert await _ensure_host(PLAN, _have("running"), IMAGE, "client") == (Action.kept, KEY)
    assert fake.calls == []


async def test_ensure_host_exited_is_started_with_same_key(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDocker(monkeypatch)
    assert await _ensure_host(PLAN, _have("exited"), IMAGE, "client") == (Action.started, KEY)
    assert fake.calls == ["start_container"]


async def test_ensure_host_missing_is_created_with_new_key(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDocker(monkeypatch)
    action, key = await _ensure_host(PLAN, None, IMAGE, "client")
    assert action is Action.created and key.startswith("ssh-ed25519 ") and key != KEY
    assert fake.calls == ["create_container"]


@pytest.mark.parametrize(
    "have",
    [
        _have("running", image="pgha-lab:bbbbbbbbbbbb"),  # older recipe
        _have("running", address="10.78.0.11"),  # another subnet
        _have("created"),  # an earlier lab up died before its identity was copied in
    ],
)
async def test_ensure_host_stale_container_is_recreated(
    monkeypatch: pytest.MonkeyPatch, have: ct.Container
) -> None:
    fake = FakeDocker(monkeypatch)
    action, key = await _ensure_host(PLAN, have, IMAGE, "client")
    assert action is Action.recreated and key != KEY
    assert fake.calls == ["remove_container", "create_container"]


async def test_ensure_host_without_host_key_is_recreated(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDocker(monkeypatch, key=None)
    action, _ = await _ensure_host(PLAN, _have("running"), IMAGE, "client")
    assert action is Action.recreated
    assert fake.calls == ["remove_container", "create_container"]
