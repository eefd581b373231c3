"""OpenTelemetry traces through the outbox: the span context travels with each event.

Off unless an exporter is configured (`outbox.trace_exporters`); every hook on the write, relay
and consume paths checks `ACTIVE` first, so tracing off costs one attribute read. When on, the
context current at `emit()` is stored in the event's `headers` as W3C `traceparent`/`tracestate`
(docs/decisions/trace-context-in-event-headers.md), goes on the wire as the CloudEvents
distributed-tracing extension and as AMQP headers, and the relay's and consumers' spans continue
that trace. A context that cannot be read starts a new trace: tracing never fails an event.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

logger = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_HEADERS = (TRACEPARENT, TRACESTATE)
TRACER_NAME = "outbox"

#: True once `start()` installed a tracer provider; read by every hook before any SDK work.
ACTIVE = False
_provider = None
# The provider's tracer, looked up once: `get_tracer` costs as much as starting a span.
_tracer = None
# While a consumer applies a batch: each event's id -> its apply span's context (`headers_caused_by`).
_causes: ContextVar[dict | None] = ContextVar("outbox_trace_causes", default=None)

# W3C trace context, version 00: version-traceid-parentid-flags, lowercase hex.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def start(
    *, exporter_name: str, service_name: str, jsonl_path: str = "", otlp_endpoint: str = "", sampler: Any = None
) -> bool:
    """Install a tracer provider exporting with `exporter_name`; False (and stay off) for none."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from outbox.trace_exporters import span_processor

    processor = span_processor(exporter_name, jsonl_path=jsonl_path, otlp_endpoint=otlp_endpoint)
    if processor is None:
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=sampler)
    provider.add_span_processor(processor)
    use_provider(provider)
    return True


def use_provider(provider: Any) -> None:
    """Trace into `provider` (a test's, with an in-memory exporter); None turns tracing off."""
    global ACTIVE, _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None
    ACTIVE = provider is not None


def provider() -> Any:
    """The installed tracer provider, or None."""
    return _provider


def stop() -> None:
    """Flush what is buffered and turn tracing off."""
    provider = _provider
    use_provider(None)
    if provider is not None and hasattr(provider, "shutdown"):
        provider.shutdown()


def flush() -> None:
    """Export what is buffered now (before a process exits)."""
    if _provider is not None and hasattr(_provider, "force_flush"):
        _provider.force_flush()


def tracer() -> trace.Tracer:
    """The outbox's tracer on the installed provider."""
    return _tracer


# --- context <-> headers ---------------------------------------------------------------------


def headers_of(span_context: SpanContext) -> dict[str, str]:
    """`span_context` as W3C trace context headers."""
    headers = {
        TRACEPARENT: f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"
    }
    if span_context.trace_state:
        headers[TRACESTATE] = span_context.trace_state.to_header()
    return headers


def current_headers() -> dict[str, str]:
    """The current span's context as headers to store with an event; empty when there is none."""
    span_context = trace.get_current_span().get_span_context()
    return headers_of(span_context) if span_context.is_valid else {}


def span_context_from(headers: Mapping[str, Any] | None) -> SpanContext | None:
    """The remote span context in `headers`; None when absent or malformed (see `is_malformed`)."""
    if not headers:
        return None
    value = headers.get(TRACEPARENT)
    if not isinstance(value, str):
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None or match.group(1) == "ff":
        return None
    trace_id, span_id = int(match.group(2), 16), int(match.group(3), 16)
    if trace_id == 0 or span_id == 0:
        return None
    state = headers.get(TRACESTATE)
    try:
        trace_state = TraceState.from_header([state]) if isinstance(state, str) and state else TraceState()
    except ValueError:
        trace_state = TraceState()
    return SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(match.group(4), 16)), trace_state=trace_state
    )


def is_malformed(headers: Mapping[str, Any] | None) -> bool:
    """True when `headers` carry a traceparent that cannot be read."""
    return bool(headers) and headers.get(TRACEPARENT) is not None and span_context_from(headers) is None


def trace_id_of(headers: Mapping[str, Any] | None) -> str:
    """The trace id (32 hex digits) stored in an event's headers, or "" (for operators' pages)."""
    span_context = span_context_from(headers)
    return f"{span_context.trace_id:032x}" if span_context is not None else ""


def parent_context(span_context: SpanContext | None) -> otel_context.Context | None:
    """A context whose parent span is `span_context` (None: a new trace)."""
    if span_context is None:
        return otel_context.Context()
    return trace.set_span_in_context(NonRecordingSpan(span_context), otel_context.Context())


# --- spans the relay and consumers start -----------------------------------------------------


def start_span(
    name: str,
    *,
    parent: SpanContext | None = None,
    links: Sequence[SpanContext] = (),
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    start_time: int | None = None,
) -> Span:
    """Start (not enter) a span: child of `parent`, a new trace when it is None, linked to `links`."""
    return tracer().start_span(
        name,
        context=parent_context(parent),
        kind=kind,
        links=[Link(link) for link in links],
        attributes=dict(attributes or {}),
        start_time=start_time,
    )


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Span | None]:
    """A span of the current trace around a block when tracing is on; nothing when off."""
    if not ACTIVE:
        yield None
        return
    with tracer().start_as_current_span(name, attributes=attributes) as current:
        yield current


def event_attributes(event: Any) -> dict[str, Any]:
    """Span attributes naming an event (ids and type; never its content)."""
    return {
        "messaging.system": "rabbitmq",
        "messaging.message.id": str(event.event_id),
        "cloudevents.event_type": event.event_type,
        "cloudevents.event_id": str(event.event_id),
    }


def apply_in_spans(events: Sequence[Any], apply_batch: Callable[[list], None], *, consumer: str) -> None:
    """Apply `events` as one batch, each inside an `apply <type>` consumer span of its delivery's trace.

    A batch of one runs inside its span, so what the handler appends joins that trace. In a larger
    batch no span is current (an append would otherwise join the wrong trace): a handler that knows
    which event caused an append gives it `headers_caused_by(event_id)`. A delivery whose
    traceparent cannot be read starts a new trace and says so in a log line.
    """
    spans: dict[Any, Span] = {}
    for event in events:
        headers = event.trace_context
        if is_malformed(headers):
            logger.warning("consumer.traceparent_ignored consumer=%s event=%s new_trace=true", consumer, event.event_id)
        attributes = event_attributes(event) | {"messaging.consumer.group.name": consumer}
        spans[event.event_id] = start_span(
            f"apply {event.event_type}",
            parent=span_context_from(headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
    token = _causes.set({event_id: span.get_span_context() for event_id, span in spans.items()})
    current = next(iter(spans.values())) if len(spans) == 1 else trace.INVALID_SPAN
    try:
        with trace.use_span(current, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            apply_batch(list(events))
    except Exception as exc:
        for span in spans.values():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        _causes.reset(token)
        for span in spans.values():
            span.end()


def headers_caused_by(event_id: Any) -> dict[str, str]:
    """Trace headers for an event appended because the consumer is applying `event_id`: its apply
    span's context; empty when tracing is off or that event is not being applied here."""
    if not ACTIVE:
        return {}
    causes = _causes.get()
    span_context = (
        causes.get(event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id))) if causes else None
    )
    return headers_of(span_context) if span_context is not None else {}
