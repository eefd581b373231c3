"""Where spans go: chosen by `OTEL_TRACES_EXPORTER` (and `OTEL_EXPORTER_OTLP_ENDPOINT`).

- `otlp`: OTLP over HTTP to the collector at the endpoint (Jaeger, Tempo, an OpenTelemetry
  collector); the default when an endpoint is set.
- `console`: each span printed to stdout as it ends (`scripts/run`).
- `jsonl`: one JSON line per span appended to a file, written as each span ends (tests collect
  the spans of real relay and consumer processes this way).
- `drop`: spans are made and then discarded: the cost of tracing without an exporter's (benchmarks).
- `none` or empty: tracing off.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

EXPORTERS = ("otlp", "console", "jsonl", "drop", "none")


class DroppingSpanExporter(SpanExporter):
    """Accepts spans and keeps none."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class JsonLinesSpanExporter(SpanExporter):
    """Appends each span to a file as one JSON object per line: ids, parent, links, name, kind, service."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(span)) + "\n" for span in spans)
        with self._lock, open(self.path, "a", encoding="utf-8") as file:
            file.write(lines)
        return SpanExportResult.SUCCESS


def span_record(span: ReadableSpan) -> dict:
    """A span as a JSON-ready dict."""
    context = span.get_span_context()
    return {
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name", ""),
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent is not None else "",
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
        "attributes": {key: value for key, value in (span.attributes or {}).items() if isinstance(value, str | int)},
        "start_time": span.start_time,
        "end_time": span.end_time,
    }


def span_processor(name: str, *, jsonl_path: str = "", otlp_endpoint: str = "") -> SpanProcessor | None:
    """The span processor for exporter `name`; None when tracing is off."""
    if name in ("", "none"):
        return None
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces"))
    if name == "console":
        return SimpleSpanProcessor(ConsoleSpanExporter())
    if name == "jsonl":
        return SimpleSpanProcessor(JsonLinesSpanExporter(jsonl_path))
    if name == "drop":
        return BatchSpanProcessor(DroppingSpanExporter())
    raise ValueError(f"OTEL_TRACES_EXPORTER must be one of {', '.join(EXPORTERS)}, not {name!r}")
