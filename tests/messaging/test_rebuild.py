"""rebuild_notifications: the table rebuilt from the log with the consumer's rules, in one transaction."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from messaging import services
from messaging.consumers import NotificationsConsumer
from messaging.events import MESSAGE_CREATED, MESSAGE_READ
from messaging.management.commands.rebuild_notifications import skipped_events_report
from messaging.models import Message, Notification
from messaging.rebuild import rebuild_notifications
from outbox.consuming import Outcome
from outbox.models import OutboxEvent
from outbox.retention import delete_published_events_of
from tests.helpers import get_messages, relay_pending_events, wait_until

MEANINGFUL = ("user_id", "message_id", "notification_type", "title", "content", "is_read", "source_event_id")


def meaningful(*extra: str) -> set[tuple]:
    return set(Notification.objects.values_list(*MEANINGFUL, *extra))


def consume_everything(channel, topology) -> None:
    """Relay what is pending and let the real consumer apply every delivery."""
    pending = OutboxEvent.objects.filter(published_at__isnull=True).count()
    relay_pending_events()
    consumer = NotificationsConsumer()
    for delivery in get_messages(channel, topology.queue_for("notifications"), expected=pending):
        consumer.handle_delivery(delivery.body)
        delivery.ack()


@pytest.fixture
def live(alice, bob, make_user, topology, broker_channel):
    carol = make_user("carol")
    messages = [
        Message.objects.create(sender=sender, receiver=receiver, content=f"hello {i} " + "x" * (60 * i))
        for i, (sender, receiver) in enumerate([(alice, bob), (bob, alice), (carol, bob), (alice, carol)])
    ]
    services.mark_message_read(message=messages[0], reader=bob)
    services.mark_message_read(message=messages[3], reader=carol)
    consume_everything(broker_channel, topology)
    assert Notification.objects.count() == 4
    return messages


@pytest.mark.django_db
def test_rebuild_of_an_intact_table_changes_nothing_not_even_ids(live, capsys):
    before = meaningful("notification_id", "created_at")

    call_command("rebuild_notifications")

    assert meaningful("notification_id", "created_at") == before
    assert "rebuilt 4 notifications from 6 events (4 kept the id of the row they replaced)" in capsys.readouterr().out


@pytest.mark.django_db
def test_rebuild_restores_lost_and_damaged_notifications(live):
    before = meaningful()
    kept = Notification.objects.get(message=live[1])
    Notification.objects.filter(message=live[0]).delete()
    Notification.objects.filter(message=live[2]).update(title="garbled", content="")

    result = rebuild_notifications()

    assert meaningful() == before
    assert Notification.objects.get(message=live[1]).notification_id == kept.notification_id
    restored = Notification.objects.get(message=live[0])
    created_event = OutboxEvent.objects.get(event_id=restored.source_event_id)
    assert restored.created_at == created_event.occurred_at
    assert result.kept_ids == 3


@pytest.mark.django_db
def test_a_notification_its_user_read_directly_stays_read(live):
    notification = Notification.objects.get(message=live[1])
    services.mark_notification_read(notification)

    rebuild_notifications()

    assert Notification.objects.get(message=live[1]).is_read is True
    assert Notification.objects.get(message=live[2]).is_read is False


@pytest.mark.django_db
def test_notifications_built_from_no_event_are_left_alone(live, alice):
    system = Notification.objects.create(user=alice, notification_type="system", title="Maintenance tonight")

    rebuild_notifications()

    assert Notification.objects.filter(pk=system.pk, title="Maintenance tonight").exists()


# Committed first, as in production: the guard on messages checks their event at the insert's commit.
@pytest.mark.django_db(transaction=True)
def test_rebuild_refuses_a_log_that_retention_pruned_unless_forced(live):
    before = meaningful("notification_id")
    delete_published_events_of("message", [str(live[2].pk)])
    Notification.objects.filter(message=live[0]).update(content="damaged")

    with pytest.raises(CommandError, match=r"1 messages have no message\.created event in the outbox.*--force"):
        call_command("rebuild_notifications")
    assert Notification.objects.get(message=live[0]).content == "damaged"

    call_command("rebuild_notifications", "--force")

    assert meaningful("notification_id") == before


@pytest.mark.django_db
def test_bad_batch_size_is_refused():
    with pytest.raises(CommandError, match="'0' is not a batch size"):
        call_command("rebuild_notifications", "--batch-size", "0")


def append_malformed_events(live) -> list[OutboxEvent]:
    """Events past outbox.emit, as they stood in the log before the guard checked the data."""
    full = OutboxEvent.objects.get(aggregate_id=str(live[1].pk), event_type=MESSAGE_CREATED).payload
    rows = [
        (live[0].pk, MESSAGE_CREATED, {}),
        # Well formed, but naming another message than its aggregate.
        (live[2].pk, MESSAGE_CREATED, full | {"content": "the secret plan"}),
        (live[3].pk, MESSAGE_READ, {"receiver_id": 1}),
        (live[3].pk, MESSAGE_READ, ["not", "an", "object"]),
    ]
    return [
        OutboxEvent.objects.create(aggregate_type="message", aggregate_id=str(pk), event_type=kind, payload=data)
        for pk, kind, data in rows
    ]


@pytest.mark.django_db
def test_rebuild_skips_malformed_events_and_reports_them_by_id_without_their_data(live, capsys, caplog):
    before = meaningful()
    malformed = append_malformed_events(live)
    Notification.objects.filter(message=live[0]).delete()

    call_command("rebuild_notifications", "--force")

    assert meaningful() == before
    out = capsys.readouterr().out
    assert "rebuilt 4 notifications from 6 events" in out
    assert "skipped 4 malformed events whose data does not fit their schema" in out
    assert out.rstrip().endswith(", ".join(str(event.event_id) for event in malformed))
    skipped = [record.getMessage() for record in caplog.records if "rebuild_skipped_event" in record.getMessage()]
    assert [line.split()[1] for line in skipped] == [f"event_id={event.event_id}" for event in malformed]
    assert 'reason="message.created v1 data at message_id is not the event\'s aggregate id"' in skipped[1]
    assert "secret plan" not in out + caplog.text


@pytest.mark.django_db
def test_rebuild_result_lists_the_skipped_events_in_log_order(live):
    malformed = append_malformed_events(live)

    result = rebuild_notifications(batch_size=2)

    assert result.skipped_event_ids == tuple(event.event_id for event in malformed)
    assert (result.events, result.notifications) == (6, 4)


@pytest.mark.django_db
def test_rebuild_skips_an_event_nested_deeper_than_python_decodes(live):
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {OutboxEvent._meta.db_table} (event_id, aggregate_type, aggregate_id, event_type, "
            "schema_version, occurred_at, payload, headers, attempts, last_error) VALUES (gen_random_uuid(), "
            "'message', %s, 'message.read', 1, now(), (repeat('[', 5000) || repeat(']', 5000))::jsonb, '{}', 0, '') "
            "RETURNING event_id",
            [str(live[0].pk)],
        )
        deep = cursor.fetchone()[0]

    result = rebuild_notifications()

    assert result.skipped_event_ids == (deep,)
    assert result.notifications == 4


def test_the_skipped_report_names_the_first_ids_and_counts_the_rest():
    ids = [uuid.UUID(int=number) for number in range(25)]

    report = skipped_events_report(ids)

    assert report.startswith("skipped 25 malformed events")
    assert report.endswith(f"{ids[19]} and 5 more")
    assert str(ids[20]) not in report


def count_from_another_connection() -> int:
    counted: list[int] = []

    def count() -> None:
        try:
            counted.append(Notification.objects.count())
        finally:
            connections.close_all()

    reader = threading.Thread(target=count)
    reader.start()
    reader.join(10)
    return counted[0]


@pytest.mark.django_db(transaction=True)
def test_readers_see_the_whole_old_table_until_the_rebuild_commits(live):
    seen_by_readers: list[int] = []

    rebuild_notifications(batch_size=1, on_progress=lambda _: seen_by_readers.append(count_from_another_connection()))

    assert len(seen_by_readers) == 6
    assert seen_by_readers == [4] * 6


def waiting_for_a_table_lock() -> bool:
    with connection.cursor() as cursor:
        # Asked inside the rebuild's transaction, which would otherwise see the activity as it
        # was at its first look for the rest of the transaction.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND wait_event = 'relation'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_the_live_consumer_waits_for_the_rebuild_and_then_applies_its_event_to_the_rebuilt_rows(
    live, bob, topology, broker_channel
):
    services.mark_message_read(message=live[2], reader=bob)
    relay_pending_events()
    [read] = get_messages(broker_channel, topology.queue_for("notifications"), expected=1)
    outcomes = []

    def consume() -> None:
        try:
            outcomes.append(NotificationsConsumer().handle_delivery(read.body))
        finally:
            connections.close_all()

    consumer = threading.Thread(target=consume)

    def on_first_page(_) -> None:
        if not consumer.is_alive() and not outcomes:
            consumer.start()
            wait_until(waiting_for_a_table_lock, what="the consumer to wait for the rebuild's lock")

    rebuild_notifications(batch_size=2, on_progress=on_first_page)
    consumer.join(10)

    assert outcomes == [Outcome.APPLIED]
    assert Notification.objects.get(message=live[2]).is_read is True
