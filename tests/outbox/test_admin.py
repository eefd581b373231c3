"""The outbox admin as operators use it: read-only events, state and type filters, resend and replay."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages as admin_messages
from django.utils import timezone

from messaging.models import Message
from outbox.models import OutboxEvent
from tests.helpers import get_messages, queue_depth, relay_pending_events

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/outbox/outboxevent/"


@pytest.fixture
def events(alice, bob, topology, broker_channel):
    """Two published events (taken off the queue), one pending, one dead."""
    first, _ = (Message.objects.create(sender=alice, receiver=bob, content=f"m{i}") for i in range(2))
    relay_pending_events()
    for delivery in get_messages(broker_channel, topology.queue_for("notifications"), expected=2):
        delivery.ack()
    third = Message.objects.create(sender=alice, receiver=bob, content="pending")
    first.is_read = True
    first.save()
    dead = OutboxEvent.objects.get(aggregate_id=str(first.pk), event_type="message.read")
    OutboxEvent.objects.filter(pk=dead.pk).update(dead_at=timezone.now(), attempts=8, last_error="unroutable")
    published = list(OutboxEvent.objects.filter(published_at__isnull=False).order_by("id"))
    pending = OutboxEvent.objects.get(aggregate_id=str(third.pk))
    return {"published": published, "pending": pending, "dead": OutboxEvent.objects.get(pk=dead.pk)}


def shown_ids(response) -> set[int]:
    return {event.pk for event in response.context["cl"].result_list}


def run_action(client, action: str, events) -> list[str]:
    response = client.post(
        CHANGELIST, {"action": action, "_selected_action": [str(event.pk) for event in events]}, follow=True
    )
    assert response.status_code == 200
    return [str(message) for message in admin_messages(response.wsgi_request)]


@pytest.mark.parametrize("state", ["pending", "published", "dead"])
def test_events_filter_by_state(admin_client, events, state):
    expected = {event.pk for event in events[state]} if state == "published" else {events[state].pk}

    assert shown_ids(admin_client.get(f"{CHANGELIST}?state={state}")) == expected


def test_events_filter_by_type(admin_client, events):
    response = admin_client.get(f"{CHANGELIST}?event_type=message.read")

    assert shown_ids(response) == {events["dead"].pk}
    assert b"message.created" in admin_client.get(CHANGELIST).content


def test_event_content_is_read_only(admin_client, events):
    event = events["published"][0]
    url = f"{CHANGELIST}{event.pk}/change/"

    page = admin_client.get(url)
    admin_client.post(url, {"event_type": "message.read", "payload": "{}"})

    assert page.status_code == 200
    assert b'name="payload"' not in page.content
    assert OutboxEvent.objects.get(pk=event.pk).payload == event.payload


def test_send_again_makes_only_the_dead_events_pending(admin_client, events):
    notes = run_action(admin_client, "send_dead_events_again", [events["dead"], events["published"][0]])

    dead = OutboxEvent.objects.get(pk=events["dead"].pk)
    assert dead.dead_at is None
    assert dead.attempts == 0
    assert notes == [
        "1 dead event(s) are pending again; a running relay publishes them. "
        "1 selected event(s) were not dead and were left alone."
    ]


def test_replay_publishes_the_selected_published_events_again(admin_client, events, topology, broker_channel):
    queue = topology.queue_for("notifications")

    notes = run_action(admin_client, "replay_published_events", [*events["published"], events["pending"]])

    replayed = get_messages(broker_channel, queue, expected=2)
    assert [d.properties["message_id"] for d in replayed] == [str(e.event_id) for e in events["published"]]
    assert len(notes) == 1
    assert notes[0].startswith("Replayed 2 published event(s), each confirmed by the broker, to the events exchange")
    assert notes[0].endswith("1 selected event(s) were not published and were left alone.")
    assert OutboxEvent.objects.get(pk=events["pending"].pk).published_at is None


def test_replay_of_a_selection_without_published_events_sends_nothing(admin_client, events, topology, broker_channel):
    [note] = run_action(admin_client, "replay_published_events", [events["pending"], events["dead"]])

    assert note == "None of the selected events is published: nothing replayed."
    assert queue_depth(broker_channel, topology.queue_for("notifications")) == 0


def test_view_only_staff_see_events_but_cannot_resend_or_replay(client, make_user, events, topology, broker_channel):
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_outboxevent"))
    client.force_login(staff)

    page = client.get(CHANGELIST)
    run_action(client, "replay_published_events", events["published"])
    run_action(client, "send_dead_events_again", [events["dead"]])

    assert page.status_code == 200
    assert b"replay_published_events" not in page.content
    assert queue_depth(broker_channel, topology.queue_for("notifications")) == 0
    assert OutboxEvent.objects.get(pk=events["dead"].pk).dead_at is not None


def test_replay_with_the_broker_down_reports_the_error_to_the_operator(admin_client, events, settings):
    working = settings.BROKER_URL
    settings.BROKER_URL = "amqp://guest:secret-pw@127.0.0.1:1//"
    try:
        [note] = run_action(admin_client, "replay_published_events", events["published"])
    finally:
        settings.BROKER_URL = working  # the namespace fixture deletes its queues through it

    assert note.startswith("replay stopped after 0 of 2 events: cannot connect to amqp://guest:**@127.0.0.1:1//")
    assert note.endswith("; run it again once that is fixed")
    assert "secret-pw" not in note


def test_a_replay_too_large_for_a_request_is_refused_and_names_the_command(admin_client, events, monkeypatch):
    monkeypatch.setattr("relay.admin.ADMIN_REPLAY_LIMIT", 1)

    [note] = run_action(admin_client, "replay_published_events", events["published"])

    assert note.startswith("More than 1 published events selected: nothing replayed. Use `manage.py outbox_replay`")
