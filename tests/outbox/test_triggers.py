"""What the database itself guards on the event table."""

from __future__ import annotations

import uuid

import pgtrigger
import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

import outbox
from messaging.events import MESSAGE_READ
from outbox.models import NOTIFY_CHANNEL, OutboxEvent
from tests.helpers import sleeping_relay_session

OUR_APPS = {"messaging", "outbox"}


def append_event() -> OutboxEvent:
    with transaction.atomic():
        return outbox.emit(
            aggregate_type="message",
            aggregate_id=uuid.uuid4(),
            event_type=MESSAGE_READ,
            payload={"message_id": str(uuid.uuid4()), "receiver_id": 1, "read_at": "2026-01-01T00:00:00Z"},
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_type", "message.created"),
        ("payload", {"tampered": True}),
        ("aggregate_id", "other"),
        ("event_id", uuid.uuid4()),
        ("occurred_at", timezone.now()),
        ("headers", {"x": 1}),
    ],
)
def test_changing_an_events_content_is_refused_by_the_database(field, value):
    event = append_event()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        OutboxEvent.objects.filter(pk=event.pk).update(**{field: value})


@pytest.mark.django_db
def test_the_relay_bookkeeping_fields_may_change():
    event = append_event()

    OutboxEvent.objects.filter(pk=event.pk).update(published_at=timezone.now(), attempts=2, last_error="x")

    event.refresh_from_db()
    assert event.attempts == 2


@pytest.mark.django_db
def test_deleting_an_event_is_refused_outside_the_retention_path():
    event = append_event()
    OutboxEvent.objects.filter(pk=event.pk).update(published_at=timezone.now())

    with pytest.raises(DatabaseError, match="retention path"), transaction.atomic():
        OutboxEvent.objects.filter(pk=event.pk).delete()

    assert OutboxEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db
def test_raw_sql_delete_is_refused_too():
    event = append_event()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM outbox_outboxevent WHERE id = %s", [event.pk])


@pytest.mark.django_db(transaction=True)
def test_insert_notifies_a_sleeping_relay_only_when_the_transaction_commits():
    with sleeping_relay_session() as listener:
        with transaction.atomic():
            append_event()
            # Not committed yet: nothing may wake a relay that would find nothing to claim.
            assert list(listener.notifies(timeout=0.3, stop_after=1)) == []
        received = list(listener.notifies(timeout=5, stop_after=1))

    assert [notify.channel for notify in received] == [NOTIFY_CHANNEL]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_insert_sends_no_notification():
    with sleeping_relay_session() as listener:
        with pytest.raises(RuntimeError), transaction.atomic():
            append_event()
            raise RuntimeError("rolled back")
        received = list(listener.notifies(timeout=0.5, stop_after=1))

    assert received == []


@pytest.mark.django_db
def test_every_trigger_is_installed_as_declared_and_none_checks_ignoring_in_a_subtransaction():
    ours = [(model, trigger) for model, trigger in pgtrigger.registered() if model._meta.app_label in OUR_APPS]
    assert {model._meta.app_label for model, _ in ours} == OUR_APPS

    for model, trigger in ours:
        # INSTALLED means the migrations installed the SQL the model declares (pgtrigger's hash).
        assert trigger.get_installation_status(model) == ("INSTALLED", True), trigger.name
        with connection.cursor() as cursor:
            cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [trigger.get_pgid(model)])
            (source,) = cursor.fetchone()
        # pgtrigger's own check raises and catches an error on every firing (outbox.pg_triggers).
        assert "_pgtrigger_should_ignore" not in source, trigger.name
        assert "current_setting('pgtrigger.ignore', true)" in source, trigger.name
