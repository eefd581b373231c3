"""One trace across real processes: gunicorn, the relay and the consumer each write their spans
to a JSON-lines file (OTEL_TRACES_EXPORTER=jsonl), and the test joins them by ids."""

from __future__ import annotations

import json
import signal
import urllib.request

import pytest

from messaging.models import Notification
from messaging.services import issue_api_token
from outbox.models import OutboxEvent
from tests.e2e.conftest import answers_healthz
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def spans_in(*paths) -> list[dict]:
    spans = []
    for path in paths:
        if path.exists():
            spans += [json.loads(line) for line in path.read_text().splitlines() if line]
    return spans


def named(spans: list[dict], name: str) -> list[dict]:
    return [span for span in spans if span["name"] == name]


def test_one_api_send_is_one_trace_through_web_relay_and_consumer_processes(
    alice, bob, gunicorn, spawn_worker, tmp_path
):
    files = {service: tmp_path / f"{service}-spans.jsonl" for service in ("web", "relay", "consumer")}

    def traced(service: str) -> dict:
        return {
            "OTEL_TRACES_EXPORTER": "jsonl",
            "OTEL_TRACES_FILE": str(files[service]),
            "OTEL_SERVICE_NAME": service,
            "OTEL_TRACE_QUERIES": "true",
        }

    port = gunicorn("--workers", "1", env=traced("web"))
    relay = spawn_worker("relay", env=traced("relay"))
    consumer = spawn_worker("consume_notifications", env=traced("consumer"))
    wait_until(lambda: answers_healthz(port), timeout=60, what="gunicorn to answer")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/messages/",
        data=json.dumps({"receiver": bob.username, "content": "trace me"}).encode(),
        headers={"Authorization": f"Token {issue_api_token(alice)}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - a fixed local http URL
        assert response.status == 201

    wait_until(lambda: Notification.objects.filter(user=bob).exists(), timeout=60, what="the notification")
    wait_until(lambda: named(spans_in(files["consumer"]), "apply message.created"), timeout=30, what="the apply span")
    wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), what="every event published")
    spans = spans_in(*files.values())

    [web] = [span for span in spans if span["name"].startswith("POST") and span["service"] == "web"]
    [send] = named(spans, "send message.created")
    [apply] = named(spans, "apply message.created")
    assert web["parent_span_id"] == ""
    assert send["service"] == "relay"
    assert apply["service"] == "consumer"
    assert web["trace_id"] == send["trace_id"] == apply["trace_id"]
    # The append happened in the request's write transaction: the send span's parent.
    [write] = named(spans, "messaging.write_message")
    assert write["parent_span_id"] == web["span_id"]
    assert send["parent_span_id"] == write["span_id"]
    # psycopg's spans (OTEL_TRACE_QUERIES): the transaction's statements are in the trace; the
    # workers' idle queries start none.
    assert [span for span in named(spans, "INSERT") if span["parent_span_id"] == write["span_id"]]
    worker_roots = {span["name"] for span in spans if span["service"] != "web" and not span["parent_span_id"]}
    assert worker_roots == {"relay.batch"}
    assert apply["parent_span_id"] == send["span_id"]
    batch_ids = {span["span_id"] for span in named(spans, "relay.batch")}
    assert {link["span_id"] for link in send["links"]} <= batch_ids
    # The notification.created event the consumer appended continues the trace under the apply span.
    appended = OutboxEvent.objects.get(event_type="notification.created")
    assert appended.headers["traceparent"].split("-")[1:3] == [apply["trace_id"], apply["span_id"]]
    for process in (relay, consumer):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
