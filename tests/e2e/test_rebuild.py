"""rebuild_notifications after a realistic flow through the real relay and consumer processes."""

from __future__ import annotations

import random

import pytest
from django.core.management import call_command

from messaging import services
from messaging.models import Message, Notification
from outbox.models import InboxEntry
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MEANINGFUL = ("user_id", "message_id", "notification_type", "title", "content", "is_read", "source_event_id")


def table(*fields: str) -> set[tuple]:
    return set(Notification.objects.values_list(*fields))


def test_the_rebuilt_table_equals_the_live_one_built_by_the_consumer(make_user, spawn_worker):
    users = [make_user() for _ in range(4)]
    spawn_worker("relay")
    spawn_worker("consume_notifications")
    rng = random.Random(20261124)
    messages = []
    for i in range(40):
        sender, receiver = rng.sample(users, 2)
        messages.append(
            Message.objects.create(sender=sender, receiver=receiver, content=f"hi {i} " * rng.randint(1, 40))
        )
    read = rng.sample(messages, 15)
    for message in read:
        services.mark_message_read(message=message, reader=message.receiver)
    wait_until(
        lambda: InboxEntry.objects.filter(consumer="notifications").count() == len(messages) + len(read),
        timeout=60,
        what="the consumer to apply every event",
    )
    live = table(*MEANINGFUL, "notification_id", "created_at")
    assert len(live) == len(messages)
    assert sum(1 for row in live if row[5]) == len(read)

    call_command("rebuild_notifications")

    assert table(*MEANINGFUL, "notification_id", "created_at") == live

    # From nothing: the same notifications, under new ids.
    Notification.objects.all().delete()
    call_command("rebuild_notifications")

    assert table(*MEANINGFUL) == {row[: len(MEANINGFUL)] for row in live}
