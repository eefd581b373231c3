"""Tracing turned on for a process: the provider, its exporter, and the instrumented libraries.

Called from `OutboxConfig.ready()` only when an exporter is configured; with tracing off nothing
here is imported.
"""

from __future__ import annotations

import atexit

from django.conf import settings
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import SpanKind

from outbox import tracing


class QueriesInsideTracesOnly(Sampler):
    """Samples every root span but a client's: the only client spans here are database queries,
    which belong to a request, a batch or an apply; the workers' polling and heartbeats would
    otherwise each start a trace of one query."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "QueriesInsideTracesOnly"


def start_tracing() -> None:
    """Start the configured exporter and instrument Django (psycopg with OTEL_TRACE_QUERIES); flush at exit."""
    started = tracing.start(
        exporter_name=settings.OTEL_TRACES_EXPORTER,
        service_name=settings.OTEL_SERVICE_NAME,
        jsonl_path=settings.OTEL_TRACES_FILE,
        otlp_endpoint=settings.OTEL_EXPORTER_OTLP_ENDPOINT,
        sampler=ParentBased(root=QueriesInsideTracesOnly()),
    )
    if not started:
        return
    provider = tracing.provider()
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().instrument(tracer_provider=provider)
    if settings.OTEL_TRACE_QUERIES:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        PsycopgInstrumentor().instrument(tracer_provider=provider, enable_commenter=False)
    atexit.register(tracing.stop)
