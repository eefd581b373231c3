"""`outbox_bench --tracing`: what tracing costs, off against on with spans made and dropped.

The write path is the single writer's `Message.objects.create` (message, event, commit), each
write inside a server span standing in for the request's, with psycopg instrumented as the web
process has it; rounds alternate off and on so that a change in the machine's load falls on both
sides. End-to-end latency runs the real relay and consumer with `OTEL_TRACES_EXPORTER=drop`
against `none`, the writes traced or not alike.
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


@contextlib.contextmanager
def tracing_dropped() -> Iterator[None]:
    """Tracing on in this process as in the web (psycopg instrumented), its spans dropped."""
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.trace.sampling import ParentBased

    from outbox.trace_setup import QueriesInsideTracesOnly

    tracing.start(exporter_name="drop", service_name="bench", sampler=ParentBased(root=QueriesInsideTracesOnly()))
    instrumentor = PsycopgInstrumentor()
    instrumentor.instrument(tracer_provider=tracing.provider(), enable_commenter=False)
    # psycopg is instrumented when a connection opens: open a new one.
    connections.close_all()
    try:
        yield
    finally:
        instrumentor.uninstrument()
        tracing.stop()
        connections.close_all()


class TracingBench(PipelineBench):
    """Write rate and end-to-end latency with tracing off and on (the drop exporter)."""

    def measure(self) -> None:
        rounds = []
        for number in range(self.config.write_rounds):
            order = ("off", "on") if number % 2 == 0 else ("on", "off")
            figures = {state: self._traced_write_rate(state == "on") for state in order}
            rounds.append(figures)
            self.progress("write path off/on", number + 1, self.config.write_rounds)
        for state in ("off", "on"):
            self.result.set(f"tracing.write.{state}_per_s", statistics.median(r[state] for r in rounds))
        self.result.set("tracing.write.overhead", statistics.median(r["off"] / r["on"] - 1 for r in rounds))
        self._discard_pending_bench_events()
        rate = self.config.rates[0]
        for state in ("off", "on"):
            self.env["OTEL_TRACES_EXPORTER"] = "drop" if state == "on" else "none"
            with tracing_dropped() if state == "on" else contextlib.nullcontext():
                self.measure_latency(prefix=f"tracing.{state}.", rates=(rate,))
        self.env.pop("OTEL_TRACES_EXPORTER")
        for name in ("p50", "p99"):
            off = self.result.figures[f"tracing.off.latency.{rate}_per_s.{name}_ms"]
            on = self.result.figures[f"tracing.on.latency.{rate}_per_s.{name}_ms"]
            self.result.set(f"tracing.latency.{rate}_per_s.{name}_change", on / off - 1)

    def _traced_write_rate(self, traced: bool) -> float:
        sender, receiver = self._users
        count = self.config.write_messages
        with tracing_dropped() if traced else contextlib.nullcontext():
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
