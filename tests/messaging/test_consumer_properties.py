"""Property: any sequence of deliveries, with duplicates, reorderings and redeliveries, ends in
the same Notification state as one clean delivery in order."""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging.consumers import NotificationsConsumer
from messaging.models import Message, Notification
from outbox.envelope import encode_event
from outbox.services import claim_pending_events


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
