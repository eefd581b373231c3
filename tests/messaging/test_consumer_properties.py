"""Properties of the consumer: any sequence of deliveries, with duplicates, reorderings and
redeliveries, ends in the same Notification state as one clean delivery in order; and no forged
delivery (any bytes, any JSON, in any envelope field) stops a running consumer or reaches a log line."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging.consumers import NotificationsConsumer
from messaging.models import Message, Notification
from outbox.envelope import encode_event
from outbox.services import claim_pending_events
from tests.helpers import publish_confirmed, queue_depth, relay_pending_events, wait_until


class Rollback(Exception):
    """Leaves a savepoint after reading the state it produced."""


def notification_state() -> dict:
    return {
        message_id: (title, content, is_read)
        for message_id, title, content, is_read in Notification.objects.values_list(
            "message_id", "title", "content", "is_read"
        )
    } | {"count": Notification.objects.count()}


def apply_in_savepoint(bodies: list[bytes]) -> dict:
    consumer = NotificationsConsumer()
    state: dict = {}
    try:
        with transaction.atomic():
            for body in bodies:
                consumer.handle_delivery(body)
            state = notification_state()
            raise Rollback
    except Rollback:
        pass
    return state


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_delivery_sequence_ends_like_one_clean_delivery(alice, bob, topology, data):
    read_flags = data.draw(st.lists(st.booleans(), min_size=1, max_size=4), label="which messages get read")
    try:
        with transaction.atomic():
            for i, read in enumerate(read_flags):
                message = Message.objects.create(sender=alice, receiver=bob, content=f"message {i} " * 30)
                if read:
                    message.is_read = True
                    message.save()
            bodies = [encode_event(event, source="/test") for event in claim_pending_events(100)]

            clean = apply_in_savepoint(bodies)
            extra = data.draw(st.lists(st.sampled_from(bodies), max_size=6), label="duplicates and redeliveries")
            chaotic = data.draw(st.permutations(bodies + extra), label="delivery order")
            messy = apply_in_savepoint(chaotic)
            raise Rollback
    except Rollback:
        pass

    assert clean["count"] == len(read_flags)
    assert messy == clean


# --- forged deliveries against a running consumer -------------------------------------------

# Planted in every forged body's strings: no log line may ever show it.
CONTENT = "planted-content-4b1d"
ENVELOPE_FIELDS = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype", "sequence", "data")

# Any code point, lone surrogates and NUL included, around the planted content.
planted_text = st.builds(lambda before, after: f"{before}{CONTENT}{after}", st.text(max_size=5), st.text(max_size=5))
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | planted_text
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
odd_digits = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4)


def forged_envelope(field: str, value) -> bytes:
    document = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/forged",
        "type": "message.created",
        "subject": "x",
        "time": "2026-01-01T00:00:00Z",
        "sequence": "1",
        "data": {"content": CONTENT},
    }
    document[field] = value
    return json.dumps(document).encode("utf-8", "surrogatepass")


def message_created_data(content: str) -> dict:
    """Data that fits the message.created schema, so that it reaches the database."""
    return {
        "message_id": str(uuid.uuid4()),
        "sender_id": 1,
        "sender_username": "mallory",
        "receiver_id": 2,
        "content": content,
        "sent_at": "2026-01-01T00:00:00Z",
        "is_read": False,
    }


forged_bodies = st.one_of(
    planted_text.map(lambda content: forged_envelope("data", message_created_data(content))),
    st.binary(max_size=300).map(lambda noise: noise + CONTENT.encode()),
    json_values.map(lambda value: json.dumps(value).encode("utf-8", "surrogatepass")),
    st.builds(forged_envelope, st.sampled_from(ENVELOPE_FIELDS), json_values),
    st.builds(forged_envelope, st.just("sequence"), odd_digits),
    st.integers(min_value=900, max_value=3000).map(
        lambda depth: forged_envelope("data", None).replace(b'"data": null', b'"data": ' + b"[" * depth + b"]" * depth)
    ),
    st.integers(min_value=1, max_value=3).map(
        lambda megabytes: forged_envelope("data", CONTENT * (megabytes * 60_000))
    ),
)


@pytest.mark.django_db(transaction=True)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(bodies=st.lists(forged_bodies, min_size=1, max_size=3))
def test_no_forged_delivery_stops_the_consumer_or_reaches_a_log_line(
    alice, bob, topology, broker_channel, running_consumer, caplog, bodies
):
    publish_confirmed(topology, *bodies)
    message = Message.objects.create(sender=alice, receiver=bob, content="valid, behind the forged ones")
    relay_pending_events()

    wait_until(lambda: Notification.objects.filter(message=message).exists(), timeout=10, what="the valid event")
    assert running_consumer._outages.consecutive_failures == 0
    # Acked or dead-lettered: nothing waits in the queue, nothing stays in the consumer's hands.
    wait_until(lambda: queue_depth(broker_channel, topology.queue_for("notifications")) == 0, what="an empty queue")
    for record in caplog.records:
        assert CONTENT not in record.getMessage(), record.getMessage()
        assert CONTENT not in (record.exc_text or "")
        assert "unexpected_error" not in record.getMessage()
