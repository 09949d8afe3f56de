"""`guardian.record`: every event becomes a span event on the current trace and a log
line; an alert is POSTed as JSON to the spec's webhook, and a refusing webhook is an error
(Temporal retries it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import ActivityEnvironment

from pgha.activities.guardian import record
from pgha.event_kinds import EventKind
from pgha.event_models import ClusterEvent, RecordInput
from pgha.spec import ClusterSpec, GuardianSettings
from tests.specs import reference_spec
from tests.webhook_receiver import Receiver, receiving

EVENT = ClusterEvent(kind=EventKind.leader_changed, at=datetime(2026, 12, 3, tzinfo=UTC),
                     subject="db2", detail="db2 leads; db1 led")  # fmt: skip


@pytest_asyncio.fixture
async def receiver(request: pytest.FixtureRequest) -> AsyncIterator[Receiver]:
    async with receiving(getattr(request, "param", 204)) as r:
        yield r


def with_webhook(url: str | None) -> ClusterSpec:
    spec = reference_spec("prod")
    g = GuardianSettings.model_validate({**spec.guardian.model_dump(), "webhook": url})
    return spec.model_copy(update={"guardian": g})


async def test_an_alert_is_posted_and_every_event_is_a_span_event(receiver: Receiver) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("RunActivity:guardian.record"):
        said = await ActivityEnvironment().run(
            record, RecordInput(spec=with_webhook(receiver.url), event=EVENT, send=True)
        )
        logged = await ActivityEnvironment().run(
            record, RecordInput(spec=with_webhook(receiver.url), event=EVENT, send=False)
        )
    assert said == "sent: 204" and logged == "logged"
    assert len(receiver.bodies) == 1 and receiver.bodies[0]["cluster"] == "prod"
    (span,) = exporter.get_finished_spans()
    assert [e.name for e in span.events] == ["pgha.event.leader_changed"] * 2
    assert span.events[0].attributes is not None
    assert span.events[0].attributes["subject"] == "db2"


@pytest.mark.parametrize("receiver", [500], indirect=True)
async def test_a_refusing_webhook_is_an_error_to_retry(receiver: Receiver) -> None:
    with pytest.raises(RuntimeError, match="answered 500"):
        await ActivityEnvironment().run(
            record, RecordInput(spec=with_webhook(receiver.url), event=EVENT, send=True)
        )


async def test_without_a_webhook_an_alert_is_only_logged() -> None:
    said = await ActivityEnvironment().run(
        record, RecordInput(spec=with_webhook(None), event=EVENT, send=True)
    )
    assert said == "logged (no webhook in the spec)"
