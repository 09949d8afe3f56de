"""Bad input fails the right step with a message an operator can act on, changes nothing
it should not, and a corrected re-run continues from there."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment

from pgha.operations import PROVISION, start_operation
from pgha.provision_models import ProvisionInput, ProvisionResult
from pgha.spec import ClusterSpec, parse_spec, spec_to_yaml
from pgha.worker import build_worker

pytestmark = pytest.mark.lab


async def provision(env: WorkflowEnvironment, spec: ClusterSpec) -> ProvisionResult:
    task_queue = f"bad-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue):
        handle = await start_operation(
            env.client, PROVISION, spec.cluster, ProvisionInput(spec=spec), task_queue=task_queue
        )
        return ProvisionResult.model_validate(await handle.result())


async def failure(env: WorkflowEnvironment, spec: ClusterSpec) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as caught:
        await provision(env, spec)
    cause = caught.value.cause
    if isinstance(cause, ActivityError):
        cause = cause.cause
    assert isinstance(cause, ApplicationError)
    return cause


def changed(spec: ClusterSpec, **fields: object) -> ClusterSpec:
    data = spec.model_dump(mode="json")
    data.update(fields)
    return parse_spec(data, "test")


async def test_unreachable_host_blocks_in_preflight(
    env: WorkflowEnvironment, lab_spec: ClusterSpec
) -> None:
    data = lab_spec.model_dump(mode="json")
    data["hosts"][5]["address"] = "10.77.0.99"  # nothing there
    err = await failure(env, parse_spec(data, "test"))
    assert err.type == "PreflightBlocked"
    assert "backup1: ssh: host backup1 (10.77.0.99): cannot connect over SSH" in err.message
    assert "nothing was changed" in err.message


async def test_wrong_ssh_key_blocks_in_preflight_without_retries(
    env: WorkflowEnvironment,
    lab_spec: ClusterSpec,
    tmp_path: Path,
    ssh_keygen: Callable[[Path], Path],
) -> None:
    key = ssh_keygen(tmp_path / "stranger")  # a valid key the hosts do not know
    ssh = lab_spec.ssh.model_dump(mode="json") | {"key_file": str(key)}
    err = await failure(env, changed(lab_spec, ssh=ssh))
    assert err.type == "PreflightBlocked"
    assert f"SSH login as root with key {key} was refused" in err.message


async def test_missing_package_version_fails_packages_then_fixed_spec_continues(
    env: WorkflowEnvironment, lab_spec: ClusterSpec
) -> None:
    packages = lab_spec.packages.model_dump(mode="json")
    packages["pins"] = {"postgresql-15": "15.99-0+deb12u1"}
    err = await failure(env, changed(lab_spec, packages=packages))
    assert err.type == "PackageNotFound", err.message
    assert "apt cannot install what the spec asks for" in err.message
    assert "15.99-0+deb12u1" in err.message
    # The operator fixes the pin (back to the spec as it was): provisioning completes.
    result = await provision(env, lab_spec)
    assert result.verified.startswith("wrote through"), spec_to_yaml(lab_spec)
