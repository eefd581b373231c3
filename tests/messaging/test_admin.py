"""Admin pages render, search and filter, and their actions go through the services."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.events import MESSAGE_CREATED, MESSAGE_READ
from messaging.models import Message, Notification
from outbox.models import InboxEntry, OutboxEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def message(alice, bob):
    return Message.objects.create(sender=alice, receiver=bob, content="Lunch at noon?")


@pytest.fixture
def notification(bob, message):
    return Notification.objects.create(user=bob, message=message, title="New message from alice", content="Lunch")


@pytest.mark.parametrize(
    "url",
    [
        "/admin/messaging/message/",
        "/admin/messaging/notification/",
        "/admin/outbox/outboxevent/",
        "/admin/outbox/inboxentry/",
    ],
)
def test_changelists_render_with_rows(admin_client, notification, url):
    InboxEntry.objects.create(consumer="notifications", event_id=uuid.uuid4(), event_type=MESSAGE_CREATED)

    response = admin_client.get(url)

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [("q=alice", 1), ("q=nobody-by-that-name", 0), ("is_read__exact=0", 1), ("is_read__exact=1", 0)],
)
def test_message_changelist_search_and_filters(admin_client, message, query, expected):
    response = admin_client.get(f"/admin/messaging/message/?{query}")

    assert response.status_code == 200
    assert response.context["cl"].result_count == expected


@pytest.mark.parametrize(("query", "expected"), [("state=pending", 1), ("state=published", 0)])
def test_outbox_changelist_filters_by_state(admin_client, message, query, expected):
    response = admin_client.get(f"/admin/outbox/outboxevent/?{query}")

    assert response.context["cl"].result_count == expected


def test_message_changelist_shows_a_preview_not_the_whole_content(admin_client, alice, bob):
    Message.objects.create(sender=alice, receiver=bob, content="start " + "x" * 500 + " TAIL-MARKER")

    response = admin_client.get("/admin/messaging/message/")

    assert b"TAIL-MARKER" not in response.content


def test_mark_read_action_appends_one_read_event_per_unread_message(admin_client, alice, bob):
    unread = [Message.objects.create(sender=alice, receiver=bob, content=f"m{i}") for i in range(2)]
    read = Message.objects.create(sender=alice, receiver=bob, content="already", is_read=True)

    response = admin_client.post(
        "/admin/messaging/message/",
        {"action": "mark_selected_read", "_selected_action": [str(m.pk) for m in [*unread, read]]},
        follow=True,
    )

    assert response.status_code == 200
    assert Message.objects.filter(is_read=False).count() == 0
    read_events = OutboxEvent.objects.filter(event_type=MESSAGE_READ)
    assert sorted(read_events.values_list("aggregate_id", flat=True)) == sorted(str(m.pk) for m in unread)


@pytest.mark.parametrize(
    ("action", "start", "end"), [("mark_selected_read", False, True), ("mark_selected_unread", True, False)]
)
def test_notification_bulk_actions_flip_is_read(admin_client, notification, action, start, end):
    Notification.objects.filter(pk=notification.pk).update(is_read=start)

    admin_client.post(
        "/admin/messaging/notification/", {"action": action, "_selected_action": [str(notification.pk)]}, follow=True
    )

    notification.refresh_from_db()
    assert notification.is_read is end


def test_notifications_cannot_be_added_by_hand(admin_client):
    assert admin_client.get("/admin/messaging/notification/add/").status_code == 403


def test_outbox_events_cannot_be_changed_or_deleted_in_the_admin(admin_client, message):
    event = OutboxEvent.objects.get()

    assert admin_client.get("/admin/outbox/outboxevent/add/").status_code == 403
    assert admin_client.post(f"/admin/outbox/outboxevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get(f"/admin/outbox/outboxevent/{event.pk}/change/").status_code == 200


def test_adding_a_message_in_the_admin_appends_its_created_event(admin_client, alice, bob):
    response = admin_client.post(
        "/admin/messaging/message/add/",
        {
            "sender": alice.pk,
            "receiver": bob.pk,
            "content": "from admin",
            "timestamp_0": "2026-01-01",
            "timestamp_1": "10:00:00",
        },
    )

    assert response.status_code == 302
    message = Message.objects.get(content="from admin")
    assert list(OutboxEvent.objects.filter(aggregate_id=str(message.pk)).values_list("event_type", flat=True)) == [
        MESSAGE_CREATED
    ]


@pytest.mark.parametrize("url", ["/admin/messaging/message/", "/admin/messaging/notification/"])
def test_changelists_run_a_fixed_number_of_queries_whatever_their_length(admin_client, make_user, url):
    def add_rows(count: int) -> None:
        for _ in range(count):
            message = Message.objects.create(sender=make_user(), receiver=make_user(), content="x")
            Notification.objects.create(user=message.receiver, message=message, title="t")

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        return len(queries)

    add_rows(3)
    few = count_queries()
    add_rows(27)
    many = count_queries()

    assert many == few
