"""The relay's spans: one trace per batch (claim, publish with confirms, mark) and, per event, a
`send <type>` producer span in the event's own trace.

The send span's parent is the context stored with the event at `emit()` (a new trace for an
event stored without one); it links to the batch, and its context is what goes on the wire, so
the consumer's apply span is its child. A replayed event gets a new trace linked to the original.
Called only when `outbox.tracing.ACTIVE`; the relay and replay keep one line each for it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from outbox import tracing
from outbox.envelope import OutgoingEvent


class SendSpans:
    """The `send` spans of a batch's events, and the events carrying their context to the wire."""

    def __init__(self, events: Sequence[OutgoingEvent], *, replay: bool = False, link: Span | None = None) -> None:
        self.spans: dict[int, Span] = {}
        self.events: list[OutgoingEvent] = []
        operation = "replay" if replay else "send"
        batch_links = [link.get_span_context()] if link is not None else []
        for event in events:
            stored = tracing.span_context_from(event.headers)
            parent, links = (None, [stored]) if replay and stored is not None else (stored, [])
            span = tracing.start_span(
                f"{operation} {event.event_type}",
                parent=parent,
                links=[*links, *batch_links],
                kind=SpanKind.PRODUCER,
                attributes=tracing.event_attributes(event) | {"outbox.id": event.id, "outbox.attempts": event.attempts},
            )
            self.spans[event.id] = span
            wire_headers = dict(event.headers) | tracing.headers_of(span.get_span_context())
            self.events.append(dataclasses.replace(event, headers=wire_headers))

    def settled(self, confirmed: Sequence[int], failed: dict[int, str]) -> None:
        """End every span: confirmed ones as such, failed ones with the error's kind."""
        confirmed_ids = set(confirmed)
        for event_id, span in self.spans.items():
            if event_id in failed:
                span.set_status(Status(StatusCode.ERROR, "not confirmed"))
            elif event_id not in confirmed_ids:
                span.set_attribute("outbox.outcome", "unsettled")
            span.end()


class BatchTrace:
    """The spans of one relay batch, from its claim to its commit."""

    def __init__(self, events: Sequence[OutgoingEvent], claim_started_ns: int) -> None:
        self.batch = tracing.start_span(
            "relay.batch", attributes={"outbox.claimed": len(events)}, start_time=claim_started_ns
        )
        tracing.start_span("relay.claim", parent=self.batch.get_span_context(), start_time=claim_started_ns).end()
        self.sends = SendSpans(events, link=self.batch)
        self.events = self.sends.events

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A child span of the batch around one step (publish with confirms, mark)."""
        with trace.use_span(tracing.start_span(name, parent=self.batch.get_span_context()), end_on_exit=True):
            yield

    def finished(self, confirmed: Sequence[int], failed: dict[int, str]) -> None:
        """End the event and batch spans once the batch committed."""
        self.sends.settled(confirmed, failed)
        self.batch.set_attribute("outbox.published", len(confirmed))
        self.batch.set_attribute("outbox.failed", len(failed))
        self.batch.end()


def batch_trace(events: Sequence[OutgoingEvent], claim_started_ns: int) -> BatchTrace | None:
    """The trace of a claimed batch when tracing is on, else None."""
    return BatchTrace(events, claim_started_ns) if tracing.ACTIVE and events else None


@contextmanager
def step(batch: BatchTrace | None, name: str) -> Iterator[None]:
    """`batch.step(name)`, or nothing when the batch is not traced."""
    if batch is None:
        yield
        return
    with batch.step(name):
        yield


def now_ns() -> int:
    """The wall clock in nanoseconds, as span start times take it."""
    return time.time_ns()
