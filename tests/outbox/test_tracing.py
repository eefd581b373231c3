"""One trace from the append to the consumer's apply, with the SDK's in-memory exporter in this
process and the real PostgreSQL and RabbitMQ in between."""

from __future__ import annotations

import logging
import uuid

import pytest
from django.db import transaction
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from messaging.consumers import NotificationsConsumer
from messaging.models import Message, Notification
from messaging.services import send_message
from outbox import tracing
from outbox.envelope import OutgoingEvent, encode_event
from outbox.models import OutboxEvent
from relay.replay import ReplaySelection, plan_replay, replay_events
from tests.helpers import get_messages, relay_pending_events

pytestmark = pytest.mark.django_db(transaction=True)


def by_name(exporter, name: str) -> list:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def only(exporter, name: str):
    found = by_name(exporter, name)
    assert len(found) == 1, [span.name for span in exporter.get_finished_spans()]
    return found[0]


def deliver(topology, broker_channel, count: int = 1) -> list[bytes]:
    deliveries = get_messages(broker_channel, topology.queue_for("notifications"), expected=count)
    for delivery in deliveries:
        delivery.ack()
    return [delivery.body for delivery in deliveries]


def latency_exemplar_trace_ids() -> set[str]:
    return {
        sample.exemplar.labels["trace_id"]
        for metric in REGISTRY.collect()
        if metric.name == "outbox_end_to_end_latency_seconds"
        for sample in metric.samples
        if sample.exemplar is not None
    }


def test_tracing_is_off_by_default_and_an_append_stores_no_trace_context(alice, bob):
    assert tracing.ACTIVE is False
    assert tracing.provider() is None
    message = send_message(sender=alice, receiver=bob, content="untraced")
    event = OutboxEvent.objects.get(aggregate_id=str(message.message_id))
    assert "traceparent" not in event.headers


def test_an_append_stores_the_current_span_context_in_the_event_headers(alice, bob, spans):
    with tracing.tracer().start_as_current_span("request") as request:
        message = Message.objects.create(sender=alice, receiver=bob, content="traced")
    event = OutboxEvent.objects.get(aggregate_id=str(message.message_id))
    context = request.get_span_context()
    assert event.headers["traceparent"] == tracing.headers_of(context)["traceparent"]
    assert tracing.trace_id_of(event.headers) == f"{context.trace_id:032x}"


def test_one_send_is_one_trace_from_the_append_through_the_relay_to_the_consumer_and_its_notification_event(
    alice, bob, topology, broker_channel, spans
):
    with tracing.tracer().start_as_current_span("request") as request:
        message = Message.objects.create(sender=alice, receiver=bob, content="follow me")
    relay_pending_events()
    NotificationsConsumer().handle_delivery(deliver(topology, broker_channel)[0])

    trace_id = request.get_span_context().trace_id
    send = only(spans, "send message.created")
    apply = only(spans, "apply message.created")
    assert send.kind == SpanKind.PRODUCER
    assert apply.kind == SpanKind.CONSUMER
    assert send.context.trace_id == apply.context.trace_id == trace_id
    assert send.parent.span_id == request.get_span_context().span_id
    assert apply.parent.span_id == send.context.span_id
    # The relay's batch is a trace of its own, linked from each event's send span.
    batch = only(spans, "relay.batch")
    assert batch.context.trace_id != trace_id
    assert [link.context.span_id for link in send.links] == [batch.context.span_id]
    assert {span.parent.span_id for span in by_name(spans, "relay.publish") + by_name(spans, "relay.mark")} == {
        batch.context.span_id
    }
    # What the consumer appended while applying belongs to the same trace, under the apply span.
    assert Notification.objects.filter(message=message).exists()
    appended = OutboxEvent.objects.get(event_type="notification.created")
    assert appended.headers["traceparent"] == tracing.headers_of(apply.context)["traceparent"]
    # The end-to-end latency observation carries the trace id as its exemplar.
    assert f"{trace_id:032x}" in latency_exemplar_trace_ids()


def test_an_event_stored_without_trace_context_is_relayed_and_starts_a_new_trace_at_the_relay(
    alice, bob, topology, broker_channel
):
    send_message(sender=alice, receiver=bob, content="before tracing")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    try:
        relay_pending_events()
        NotificationsConsumer().handle_delivery(deliver(topology, broker_channel)[0])
    finally:
        tracing.use_provider(None)
    send = only(exporter, "send message.created")
    apply = only(exporter, "apply message.created")
    assert send.parent is None
    assert apply.parent.span_id == send.context.span_id


def test_a_replayed_event_gets_a_new_trace_linked_to_the_original(alice, bob, topology, broker_channel, spans):
    with tracing.tracer().start_as_current_span("request") as request:
        Message.objects.create(sender=alice, receiver=bob, content="again")
    relay_pending_events()
    deliver(topology, broker_channel)

    replay_events(plan_replay(ReplaySelection()))
    NotificationsConsumer().handle_delivery(deliver(topology, broker_channel)[0])

    original = request.get_span_context()
    replay = only(spans, "replay message.created")
    assert replay.parent is None
    assert replay.context.trace_id != original.trace_id
    assert [(link.context.trace_id, link.context.span_id) for link in replay.links] == [
        (original.trace_id, original.span_id)
    ]
    applied = by_name(spans, "apply message.created")
    assert applied[-1].context.trace_id == replay.context.trace_id


@pytest.mark.parametrize("traceparent", ["garbage", "00-" + "0" * 32 + "-" + "1" * 16 + "-01", 42])
def test_a_malformed_traceparent_on_a_delivery_is_ignored_with_a_log_line_and_the_event_applied(
    alice, bob, spans, caplog, traceparent
):
    message = Message.objects.create(sender=alice, receiver=bob, content="odd header")
    stored = OutboxEvent.objects.get(aggregate_id=str(message.message_id), event_type="message.created")
    body = encode_event(
        OutgoingEvent(
            id=stored.id,
            event_id=uuid.uuid4(),
            aggregate_type=stored.aggregate_type,
            aggregate_id=stored.aggregate_id,
            event_type=stored.event_type,
            schema_version=stored.schema_version,
            payload_json=__import__("json").dumps(stored.payload),
            headers={"traceparent": traceparent},
            occurred_at=stored.occurred_at,
        ),
        source="/test",
    )
    if not isinstance(traceparent, str):
        body = body.replace(b'"data":', f'"traceparent":{traceparent},"data":'.encode())
    with transaction.atomic():
        Notification.objects.filter(message=message).delete()

    with caplog.at_level(logging.WARNING, logger="outbox.tracing"):
        NotificationsConsumer().handle_delivery(body)

    assert Notification.objects.filter(message=message).count() == 1
    assert "consumer.traceparent_ignored consumer=notifications" in caplog.text
    assert only(spans, "apply message.created").parent is None


def test_a_batch_applied_at_once_gives_each_event_its_apply_span_and_each_notification_event_its_trace(
    alice, bob, topology, broker_channel, spans
):
    requests = []
    for content in ("first", "second"):
        with tracing.tracer().start_as_current_span("request") as request:
            send_message(sender=alice, receiver=bob, content=content)
        requests.append(request.get_span_context().trace_id)
    relay_pending_events()
    consumer = NotificationsConsumer()
    consumer.apply_events([consumer.check_delivery(body) for body in deliver(topology, broker_channel, 2)])

    applies = by_name(spans, "apply message.created")
    sends = {span.context.span_id: span for span in by_name(spans, "send message.created")}
    assert sorted(span.context.trace_id for span in applies) == sorted(requests)
    for apply in applies:
        assert sends[apply.parent.span_id].context.trace_id == apply.context.trace_id
    appended = {event.headers["traceparent"] for event in OutboxEvent.objects.filter(event_type="notification.created")}
    assert appended == {tracing.headers_of(apply.context)["traceparent"] for apply in applies}
