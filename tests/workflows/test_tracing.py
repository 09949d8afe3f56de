"""One trace from the client to every SSH command: the real preflight activity on a real sshd."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pgha.activities.preflight import check_host
from pgha.checks.preflight import HostCheckInput, HostReport
from pgha.models import HostTarget
from pgha.spec import PackageSource, PreflightSettings, Role
from tests.workflows.fakes import CheckOneHost

pytestmark = pytest.mark.sshd


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def parent_name(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> str:
    assert span.parent is not None, f"{span.name} has no parent"
    return by_id[span.parent.span_id].name


async def test_trace_runs_from_client_through_workflow_to_ssh_commands(
    env: WorkflowEnvironment, sshd: HostTarget, spans: InMemorySpanExporter
) -> None:
    config = env.client.config()
    config["interceptors"] = [TracingInterceptor()]
    client = Client(**config)
    task_queue = f"trace-{uuid.uuid4()}"
    inp = HostCheckInput(
        cluster="trace", target=sshd, roles=[Role.haproxy], disk_paths=["/"], ports=[],
        package_source=PackageSource.debian, mirror=None, postgres_version=15,
        thresholds=PreflightSettings(),
    )  # fmt: skip
    async with Worker(
        client, task_queue=task_queue, workflows=[CheckOneHost], activities=[check_host]
    ):
        report = await client.execute_workflow(
            "CheckOneHost", inp, id=f"trace-{uuid.uuid4()}", task_queue=task_queue,
            result_type=HostReport,
        )  # fmt: skip
    assert report.facts is not None and report.facts.cpus >= 1

    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    names = [s.name for s in finished]
    assert "StartWorkflow:CheckOneHost" in names
    run_activity = next(s for s in finished if s.name == "RunActivity:preflight.check_host")
    assert parent_name(run_activity, by_id) == "StartActivity:preflight.check_host"
    start_activity = by_id[run_activity.parent.span_id]  # type: ignore[union-attr]
    # Workflow spans have no duration, so the SDK hangs the activity's start directly under
    # the client's StartWorkflow, beside RunWorkflow: still one trace from the CLI down.
    assert parent_name(start_activity, by_id) == "StartWorkflow:CheckOneHost"
    run_workflow = next(s for s in finished if s.name == "RunWorkflow:CheckOneHost")
    assert parent_name(run_workflow, by_id) == "StartWorkflow:CheckOneHost"

    ssh = [s for s in finished if s.name.startswith("ssh ")]
    assert len(ssh) >= 8  # os-release, nproc, meminfo, init, time, ss, apt sources, df, ...
    for s in ssh:
        assert parent_name(s, by_id) == "RunActivity:preflight.check_host"
        assert s.context.trace_id == run_activity.context.trace_id
        assert s.attributes is not None
        assert s.attributes["pgha.host"] == "local"
        assert isinstance(s.attributes["pgha.exit_code"], int)
