"""outbox.emit: the one way to append an event, checked against its schema."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

import outbox
from messaging.events import MESSAGE_CREATED, MESSAGE_READ
from outbox.errors import InvalidEventPayload, UnknownEventType
from outbox.models import OutboxEvent
from outbox.schemas import validate_event_data
from tests.helpers import register_schema_for_this_test


def read_payload(**overrides):
    payload = {"message_id": str(uuid.uuid4()), "receiver_id": 7, "read_at": "2026-01-01T00:00:00Z"}
    payload.update(overrides)
    return payload


@pytest.mark.django_db
def test_emit_appends_an_event_with_its_envelope_fields():
    aggregate_id = uuid.uuid4()
    event = outbox.emit(
        aggregate_type="message",
        aggregate_id=aggregate_id,
        event_type=MESSAGE_READ,
        payload=read_payload(message_id=str(aggregate_id)),
        headers={"correlation_id": "abc"},
    )

    stored = OutboxEvent.objects.get(pk=event.pk)
    assert stored.aggregate_id == str(aggregate_id)
    assert stored.schema_version == 1
    assert stored.headers == {"correlation_id": "abc"}
    assert stored.published_at is None
    assert stored.attempts == 0
    assert isinstance(stored.event_id, uuid.UUID)


@pytest.mark.django_db
def test_emitted_event_ids_grow_in_write_order():
    ids = [
        outbox.emit(
            aggregate_type="message", aggregate_id=uuid.uuid4(), event_type=MESSAGE_READ, payload=read_payload()
        ).pk
        for _ in range(3)
    ]

    assert ids == sorted(ids)


@pytest.mark.django_db
def test_event_ids_are_time_ordered_uuids_in_write_order():
    # v7 ids land together at the end of the event-id index (outbox.ids says why that matters).
    events = [
        outbox.emit(
            aggregate_type="message", aggregate_id=uuid.uuid4(), event_type=MESSAGE_READ, payload=read_payload()
        )
        for _ in range(20)
    ]

    stored = list(OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).order_by("pk"))
    assert {event.event_id.version for event in stored} == {7}
    assert [event.event_id for event in stored] == sorted(event.event_id for event in stored)


@pytest.mark.django_db
def test_emit_refuses_an_unknown_event_type():
    with pytest.raises(UnknownEventType, match=r"message\.deleted"):
        outbox.emit(aggregate_type="message", aggregate_id=1, event_type="message.deleted", payload={})

    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        {"receiver_id": 7, "read_at": "2026-01-01T00:00:00Z"},
        read_payload(message_id="not-a-uuid"),
        read_payload(unexpected="field"),
        read_payload(receiver_id=None),
    ],
    ids=["missing-field", "bad-uuid", "extra-field", "wrong-type"],
)
def test_emit_refuses_a_payload_that_breaks_the_schema(payload):
    with pytest.raises(InvalidEventPayload):
        outbox.emit(aggregate_type="message", aggregate_id=1, event_type=MESSAGE_READ, payload=payload)

    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db
def test_schema_errors_never_quote_the_payload_values():
    secret = "my secret message text"
    with pytest.raises(InvalidEventPayload) as caught:
        outbox.emit(
            aggregate_type="message", aggregate_id=1, event_type=MESSAGE_READ, payload=read_payload(message_id=secret)
        )

    assert secret not in str(caught.value)


@pytest.mark.django_db(transaction=True)
def test_emit_many_appends_all_or_nothing_with_the_transaction():
    drafts = [
        outbox.services.EventDraft(
            aggregate_type="message", aggregate_id=i, event_type=MESSAGE_READ, payload=read_payload()
        )
        for i in range(3)
    ]
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.emit_many(drafts)
        raise RuntimeError("rolled back")

    assert OutboxEvent.objects.count() == 0


NAMED = "test.names_its_aggregate"


@pytest.fixture
def schema_naming_its_aggregate(monkeypatch):
    # No "type": "object", so data of any type reaches the aggregate check.
    schema = {"properties": {"thing_id": {"type": ["string", "null"]}}}
    register_schema_for_this_test(monkeypatch, NAMED, schema, aggregate_id_key="thing_id")


@pytest.mark.django_db
@pytest.mark.parametrize("data", [{}, {"thing_id": "another-thing"}, {"thing_id": None}, {"other": "thing-1"}])
def test_an_event_whose_data_does_not_name_its_aggregate_is_refused(schema_naming_its_aggregate, data):
    refused = "data at thing_id is not the event's aggregate id"
    with pytest.raises(InvalidEventPayload, match=refused), transaction.atomic():
        outbox.emit(aggregate_type="thing", aggregate_id="thing-1", event_type=NAMED, payload=data)

    assert not OutboxEvent.objects.filter(event_type=NAMED).exists()


@pytest.mark.django_db
def test_an_event_whose_data_names_its_aggregate_is_appended(schema_naming_its_aggregate):
    with transaction.atomic():
        outbox.emit(aggregate_type="thing", aggregate_id="thing-1", event_type=NAMED, payload={"thing_id": "thing-1"})

    assert OutboxEvent.objects.get(event_type=NAMED).payload == {"thing_id": "thing-1"}


@pytest.mark.django_db
def test_a_message_created_event_naming_another_message_is_refused_without_its_content(alice, bob):
    message_id, other = uuid.uuid4(), uuid.uuid4()
    payload = {
        "message_id": str(other),
        "sender_id": alice.pk,
        "sender_username": "alice",
        "receiver_id": bob.pk,
        "content": "the secret plan",
        "sent_at": "2026-01-01T00:00:00Z",
        "is_read": False,
    }

    with pytest.raises(InvalidEventPayload) as refused, transaction.atomic():
        outbox.emit(aggregate_type="message", aggregate_id=message_id, event_type=MESSAGE_CREATED, payload=payload)

    assert str(refused.value) == "message.created v1 data at message_id is not the event's aggregate id"


@pytest.mark.parametrize("data", [["thing-1"], "thing-1", None])
def test_data_that_is_not_an_object_cannot_name_its_aggregate(schema_naming_its_aggregate, data):
    with pytest.raises(InvalidEventPayload, match="data at thing_id is not the event's aggregate id"):
        validate_event_data(NAMED, 1, data, aggregate_id="thing-1")
