"""OpenTelemetry setup from the standard OTEL_* settings. Tracing only; no-op when unset.

``OTEL_TRACES_EXPORTER`` chooses the exporters (``otlp``, ``console``, ``none``; comma
separated); OTLP goes over HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). Unlike the SDK's own default, pgha exports nothing
unless one of those is set, so a laptop without a collector is not flooded with errors.
"""

from __future__ import annotations

import atexit
import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from pgha.errors import SettingsError

_configured = False


def _exporters() -> list[SpanExporter]:
    names = os.environ.get("OTEL_TRACES_EXPORTER")
    if names is None:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        )
        names = "otlp" if endpoint else "none"
    out: list[SpanExporter] = []
    for name in (n.strip() for n in names.split(",")):
        if name in ("", "none"):
            continue
        if name == "console":
            out.append(ConsoleSpanExporter())
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            out.append(OTLPSpanExporter())
        else:
            raise SettingsError(
                f"OTEL_TRACES_EXPORTER: {name!r} is not supported; use otlp, console or none"
            )
    return out


def setup_tracing(service: str = "pgha") -> None:
    """Install a global tracer provider when OTEL_* settings ask for export. Idempotent."""
    global _configured
    if _configured:
        return
    _configured = True
    exporters = _exporters()
    if not exporters:
        return
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)
