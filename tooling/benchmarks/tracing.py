"""`outbox_bench --tracing`: what tracing costs, off against on with spans made and dropped.

The write path is the single writer's `Message.objects.create` (message, event, commit) in three
states, rounds rotating their order so that a change in the machine's load falls on all: off;
`spans`, each write inside a server span standing in for the request's, so the outbox stores its
context; `queries`, as the web runs it, psycopg instrumented too (a span per statement).
End-to-end latency runs the real relay and consumer with `OTEL_TRACES_EXPORTER=drop` against
`none` (statements not traced, the default), the writes in the `spans` state or off alike.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator

from django.db import connections
from opentelemetry.trace import SpanKind

from messaging.models import Message
from outbox import tracing
from tooling.benchmarks.pipeline import PipelineBench

WRITE_STATES = ("off", "spans", "queries")


@contextlib.contextmanager
def tracing_dropped(*, queries: bool = True) -> Iterator[None]:
    """Tracing on in this process, its spans dropped; with `queries`, psycopg instrumented as in the web."""
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.trace.sampling import ParentBased

    from outbox.trace_setup import QueriesInsideTracesOnly

    tracing.start(exporter_name="drop", service_name="bench", sampler=ParentBased(root=QueriesInsideTracesOnly()))
    instrumentor = PsycopgInstrumentor()
    if queries:
        instrumentor.instrument(tracer_provider=tracing.provider(), enable_commenter=False)
        # psycopg is instrumented when a connection opens: open a new one.
        connections.close_all()
    try:
        yield
    finally:
        if queries:
            instrumentor.uninstrument()
            connections.close_all()
        tracing.stop()


def _state(name: str):
    if name == "off":
        return contextlib.nullcontext()
    return tracing_dropped(queries=name == "queries")


class TracingBench(PipelineBench):
    """Write rate and end-to-end latency with tracing off and on (the drop exporter)."""

    def measure(self) -> None:
        rounds = []
        for number in range(self.config.write_rounds):
            shift = number % len(WRITE_STATES)
            order = WRITE_STATES[shift:] + WRITE_STATES[:shift]
            rounds.append({state: self._traced_write_rate(state) for state in order})
            self.progress("write path off/spans/queries", number + 1, self.config.write_rounds)
        for state in WRITE_STATES:
            self.result.set(f"tracing.write.{state}_per_s", statistics.median(r[state] for r in rounds))
            if state != "off":
                overhead = statistics.median(r["off"] / r[state] - 1 for r in rounds)
                self.result.set(f"tracing.write.{state}_overhead", overhead)
        self._discard_pending_bench_events()
        rate = self.config.rates[0]
        for state in ("off", "on"):
            self.env["OTEL_TRACES_EXPORTER"] = "drop" if state == "on" else "none"
            with _state("spans" if state == "on" else "off"):
                self.measure_latency(prefix=f"tracing.{state}.", rates=(rate,))
        self.env.pop("OTEL_TRACES_EXPORTER")
        for name in ("p50", "p99"):
            off = self.result.figures[f"tracing.off.latency.{rate}_per_s.{name}_ms"]
            on = self.result.figures[f"tracing.on.latency.{rate}_per_s.{name}_ms"]
            self.result.set(f"tracing.latency.{rate}_per_s.{name}_change", on / off - 1)

    def _traced_write_rate(self, state: str) -> float:
        sender, receiver = self._users
        count = self.config.write_messages
        traced = state != "off"
        with _state(state):
            started = time.perf_counter()
            for _ in range(count):
                with _request_span(traced):
                    Message.objects.create(sender=sender, receiver=receiver, content="benchmark message")
            elapsed = time.perf_counter() - started
        return count / elapsed


def _request_span(traced: bool):
    if not traced:
        return contextlib.nullcontext()
    return tracing.tracer().start_as_current_span("POST api/messages/", kind=SpanKind.SERVER)
