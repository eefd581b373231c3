"""Every write path commits a Message and its events together, or refuses loudly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.sites import site  # noqa: F401 - admin URLs must be loaded for the request test
from django.db import DatabaseError, connection, transaction
from django.db.models.signals import post_save

from messaging.events import MESSAGE_CREATED, MESSAGE_READ
from messaging.models import Message
from messaging.signals import (
    created_event_guard_ignored_by_this_session,
    message_event_receivers_disconnected,
    message_events_disabled,
)
from outbox.errors import NotInTransaction
from outbox.models import OutboxEvent
from outbox.partitions import create_partitions_ahead, list_partitions
from outbox.recent_events import recent_events_window, refresh_recent_events_view
from outbox.services import emit
from tests.helpers import partitions_of


def events_of(message_id, event_type=None) -> list[str]:
    events = OutboxEvent.objects.filter(aggregate_type="message", aggregate_id=str(message_id))
    if event_type:
        events = events.filter(event_type=event_type)
    return list(events.order_by("id").values_list("event_type", flat=True))


class FailAfterEvents:
    """A post_save receiver, connected after the app's own, that fails once the events exist."""

    def __init__(self) -> None:
        self.saw_event = False

    def __call__(self, sender, instance, **kwargs) -> None:
        self.saw_event = OutboxEvent.objects.filter(aggregate_id=str(instance.pk)).exists()
        raise RuntimeError("failure after the event was written")

    def __enter__(self):
        post_save.connect(self, sender=Message, dispatch_uid="test-fail-after-events")
        return self

    def __exit__(self, *exc) -> None:
        post_save.disconnect(sender=Message, dispatch_uid="test-fail-after-events")


# --- signals ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_a_message_appends_exactly_one_message_created_event(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hello")

    assert events_of(message.pk) == [MESSAGE_CREATED]
    event = OutboxEvent.objects.get(aggregate_id=str(message.pk))
    assert event.payload["message_id"] == str(message.pk)
    assert event.payload["sender_username"] == "alice"
    assert event.payload["receiver_id"] == bob.pk
    assert event.payload["is_read"] is False


@pytest.mark.django_db
def test_unrelated_updates_append_no_event(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hello")

    message.content = "edited"
    message.save()
    message.save(update_fields=["content"])

    assert events_of(message.pk) == [MESSAGE_CREATED]


@pytest.mark.django_db
def test_flipping_is_read_to_true_appends_one_message_read_event(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hello")

    message.is_read = True
    message.save()
    message.save()  # already read: no second event

    assert events_of(message.pk) == [MESSAGE_CREATED, MESSAGE_READ]
    read = OutboxEvent.objects.get(aggregate_id=str(message.pk), event_type=MESSAGE_READ)
    assert read.payload["receiver_id"] == bob.pk


@pytest.mark.django_db
def test_marking_unread_emits_nothing_and_reading_again_emits_again(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hello")
    message.is_read = True
    message.save()

    message.is_read = False
    message.save()
    message.is_read = True
    message.save()

    assert events_of(message.pk) == [MESSAGE_CREATED, MESSAGE_READ, MESSAGE_READ]


@pytest.mark.django_db
def test_read_flip_is_decided_by_the_stored_row_not_a_stale_instance(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hello")
    stale = Message.objects.get(pk=message.pk)
    message.is_read = True
    message.save()

    stale.is_read = True
    stale.save()  # the row is already read: not a flip

    assert events_of(message.pk, MESSAGE_READ) == [MESSAGE_READ]


@pytest.mark.django_db
def test_save_with_update_fields_including_is_read_emits_read(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hello")

    message.is_read = True
    message.save(update_fields=["is_read"])

    assert events_of(message.pk, MESSAGE_READ) == [MESSAGE_READ]


@pytest.mark.django_db
def test_long_content_travels_whole_in_the_event(alice, bob):
    content = "x" * 5000
    message = Message.objects.create(sender=alice, receiver=bob, content=content)

    assert OutboxEvent.objects.get(aggregate_id=str(message.pk)).payload["content"] == content


@pytest.mark.django_db
def test_event_receivers_can_be_disconnected_for_isolated_tests(alice, bob):
    with message_events_disabled():
        message = Message.objects.create(sender=alice, receiver=bob, content="quiet")
        message.is_read = True
        message.save()

    assert events_of(message.pk) == []
    # Reconnected afterwards.
    loud = Message.objects.create(sender=alice, receiver=bob, content="loud")
    assert events_of(loud.pk) == [MESSAGE_CREATED]


# --- one transaction on every path ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_create_in_autocommit_mode_leaves_neither_row_when_a_later_receiver_fails(alice, bob):
    assert not connection.in_atomic_block
    with FailAfterEvents() as failure, pytest.raises(RuntimeError):
        Message.objects.create(sender=alice, receiver=bob, content="doomed")

    assert failure.saw_event
    assert Message.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_save_in_autocommit_mode_leaves_neither_change_when_a_later_receiver_fails(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hello")
    message.is_read = True

    with FailAfterEvents() as failure, pytest.raises(RuntimeError):
        message.save()

    assert failure.saw_event
    assert Message.objects.get(pk=message.pk).is_read is False
    assert events_of(message.pk) == [MESSAGE_CREATED]


@pytest.mark.django_db(transaction=True)
def test_create_inside_atomic_rolls_back_with_its_event(alice, bob):
    with pytest.raises(RuntimeError), transaction.atomic():
        Message.objects.create(sender=alice, receiver=bob, content="doomed")
        assert OutboxEvent.objects.count() == 1
        raise RuntimeError("the caller's transaction fails later")

    assert Message.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_create_inside_a_request_leaves_neither_row_when_a_later_receiver_fails(admin_client, alice, bob):
    with FailAfterEvents() as failure, pytest.raises(RuntimeError):
        admin_client.post(
            "/admin/messaging/message/add/",
            {
                "sender": alice.pk,
                "receiver": bob.pk,
                "content": "doomed",
                "timestamp_0": "2026-01-01",
                "timestamp_1": "10:00:00",
            },
        )

    assert failure.saw_event
    assert Message.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_successful_create_in_autocommit_commits_message_and_event(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hello")

    assert Message.objects.filter(pk=message.pk).exists()
    assert events_of(message.pk) == [MESSAGE_CREATED]


# --- paths that skip signals ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_bulk_create_appends_one_created_event_per_message(alice, bob):
    messages = Message.objects.bulk_create([Message(sender=alice, receiver=bob, content=f"bulk {i}") for i in range(5)])

    assert Message.objects.count() == 5
    for message in messages:
        assert events_of(message.pk) == [MESSAGE_CREATED]


@pytest.mark.django_db
def test_bulk_create_refuses_to_ignore_conflicts(alice, bob):
    with pytest.raises(ValueError, match="conflicts"):
        Message.objects.bulk_create([Message(sender=alice, receiver=bob, content="x")], ignore_conflicts=True)


@pytest.mark.django_db
def test_queryset_update_of_is_read_refuses_and_names_mark_read(alice, bob):
    Message.objects.create(sender=alice, receiver=bob, content="hello")

    with pytest.raises(ValueError, match=r"mark_read\(\)"):
        Message.objects.update(is_read=True)
    assert Message.objects.filter(is_read=True).count() == 0


@pytest.mark.django_db
def test_bulk_update_of_is_read_refuses(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hello")
    message.is_read = True

    with pytest.raises(ValueError, match=r"mark_read\(\)"):
        Message.objects.bulk_update([message], ["is_read"])


@pytest.mark.django_db
def test_queryset_update_of_other_fields_still_works(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hello")

    assert Message.objects.filter(pk=message.pk).update(content="edited") == 1
    assert events_of(message.pk) == [MESSAGE_CREATED]


@pytest.mark.django_db(transaction=True)
def test_mark_read_appends_one_read_event_per_message_it_flips(alice, bob):
    unread = [Message.objects.create(sender=alice, receiver=bob, content=f"m{i}") for i in range(3)]
    already = Message.objects.create(sender=alice, receiver=bob, content="read", is_read=True)

    flipped = Message.objects.filter(receiver=bob).mark_read()

    assert flipped == 3
    assert Message.objects.filter(is_read=False).count() == 0
    for message in unread:
        assert events_of(message.pk, MESSAGE_READ) == [MESSAGE_READ]
    assert events_of(already.pk, MESSAGE_READ) == []


@pytest.mark.django_db(transaction=True)
def test_raw_sql_insert_without_its_event_is_refused_at_commit(alice, bob):
    with pytest.raises(DatabaseError, match=r"without a message\.created outbox event naming it"):
        insert_raw_message(alice, bob)

    assert Message.objects.count() == 0


def insert_raw_message(sender, receiver, message_id=None) -> None:
    """A message written past the ORM, with no event: what the guard is for."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO messaging_message (message_id, sender_id, receiver_id, content, timestamp, is_read) "
            "VALUES (%s, %s, %s, 'raw', now(), false)",
            [message_id or uuid.uuid4(), sender.pk, receiver.pk],
        )


@pytest.mark.django_db(transaction=True)
def test_the_guard_ignored_by_a_session_lets_it_commit_bare_messages_and_only_while_asked(alice, bob):
    with message_event_receivers_disconnected(), created_event_guard_ignored_by_this_session():
        Message.objects.create(sender=alice, receiver=bob, content="bare")
        insert_raw_message(alice, bob)
    assert Message.objects.count() == 2

    with pytest.raises(DatabaseError, match=r"without a message\.created outbox event naming it"):
        insert_raw_message(alice, bob)
    assert Message.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("names", ["nothing", "another message", "the message in another key"])
def test_raw_sql_insert_whose_created_event_does_not_name_it_is_refused_at_commit(alice, bob, names):
    message_id = uuid.uuid4()
    payload = {
        "nothing": {},
        "another message": {"message_id": str(uuid.uuid4())},
        "the message in another key": {"id": str(message_id)},
    }[names]

    refused = r"without a message\.created outbox event naming it in data\.message_id"
    with pytest.raises(DatabaseError, match=refused), transaction.atomic():
        insert_raw_message(alice, bob, message_id)
        # Past outbox.emit, which would refuse it in Python first.
        OutboxEvent.objects.create(
            aggregate_type="message", aggregate_id=str(message_id), event_type=MESSAGE_CREATED, payload=payload
        )

    assert Message.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_raw_sql_insert_with_its_event_in_the_same_transaction_commits(alice, bob):
    message_id = uuid.uuid4()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO messaging_message (message_id, sender_id, receiver_id, content, timestamp, is_read) "
                "VALUES (%s, %s, %s, 'raw', now(), false)",
                [message_id, alice.pk, bob.pk],
            )
        emit(
            aggregate_type="message",
            aggregate_id=message_id,
            event_type=MESSAGE_CREATED,
            payload={
                "message_id": message_id,
                "sender_id": alice.pk,
                "sender_username": "alice",
                "receiver_id": bob.pk,
                "content": "raw",
                "sent_at": "2026-01-01T00:00:00Z",
                "is_read": False,
            },
        )

    assert Message.objects.filter(pk=message_id).exists()


@pytest.mark.django_db(transaction=True)
def test_emit_outside_a_transaction_raises_instead_of_committing_alone():
    with pytest.raises(NotInTransaction):
        emit(
            aggregate_type="message",
            aggregate_id=uuid.uuid4(),
            event_type=MESSAGE_READ,
            payload={"message_id": str(uuid.uuid4()), "receiver_id": 1, "read_at": "2026-01-01T00:00:00Z"},
        )

    assert OutboxEvent.objects.count() == 0


def _outbox_scans() -> tuple[int, int]:
    # This transaction's own sequential and index scans of the event table's partitions, as counted so far.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(seq_scan), sum(idx_scan) FROM pg_stat_xact_user_tables WHERE relname = ANY(%s)",
            [list(partitions_of(OutboxEvent._meta.db_table))],
        )
        return cursor.fetchone()


def test_the_guard_probes_the_aggregate_index_even_when_the_outbox_looked_empty(alice, bob):
    # Statistics of a (nearly) empty outbox, as on a new deployment: the guard's probe is planned
    # afresh now, and PL/pgSQL keeps that plan for the session, whatever the table grows to.
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboxEvent._meta.db_table}")
    with transaction.atomic():
        Message.objects.create(sender=alice, receiver=bob, content="hello")
        seq_before, idx_before = _outbox_scans()
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred guard runs now
        seq_after, idx_after = _outbox_scans()

    assert seq_after == seq_before, "the guard read the outbox sequentially"
    assert idx_after > idx_before


def _outbox_partitions_locked() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relation::regclass::text FROM pg_locks WHERE pid = pg_backend_pid() AND relation IS NOT NULL"
        )
        locked = {row[0] for row in cursor.fetchall()}
    return locked & partitions_of(OutboxEvent._meta.db_table)


@pytest.mark.django_db(transaction=True)
def test_the_guard_locks_only_the_partitions_of_today_and_tomorrow(alice, bob):
    # A probe of the whole table would lock every partition at each COMMIT, as the table grows a
    # partition a day (outbox.recent_events).
    table = OutboxEvent._meta.db_table
    today = datetime.now(UTC).date()
    created = create_partitions_ahead(table, days_ahead=10, today=today)
    try:
        with transaction.atomic():
            Message.objects.create(sender=alice, receiver=bob, content="hello")
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred guard runs now
            locked = _outbox_partitions_locked()
        window = {p.name for p in list_partitions(table) if _overlaps_window(p, today)}
        every = {p.name for p in list_partitions(table)}
    finally:
        with connection.cursor() as cursor:
            for name in created:
                cursor.execute(f'DROP TABLE "{name}"')

    assert locked - {table} <= window
    assert len(every) > len(window) + 5


def _overlaps_window(partition, today) -> bool:
    lower, upper = recent_events_window(today)
    return (
        not partition.is_default
        and (partition.lower is None or partition.lower < upper)
        and (partition.upper is None or partition.upper > lower)
    )


@pytest.mark.django_db(transaction=True)
def test_a_guard_whose_view_is_days_stale_still_finds_the_event_and_still_refuses_a_bare_message(alice, bob):
    refresh_recent_events_view(today=datetime.now(UTC).date() - timedelta(days=5))
    try:
        message = Message.objects.create(sender=alice, receiver=bob, content="hello")
        with pytest.raises(DatabaseError, match=r"without a message\.created outbox event naming it"):
            insert_raw_message(alice, bob)
    finally:
        refresh_recent_events_view()

    assert list(Message.objects.values_list("pk", flat=True)) == [message.pk]
