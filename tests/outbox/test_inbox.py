"""The inbox: one row per (consumer, event), the database's unique key makes it exactly once."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

from outbox.errors import NotInTransaction
from outbox.inbox import record_in_inbox
from outbox.models import InboxEntry


@pytest.mark.django_db
def test_first_record_is_new_and_a_repeat_is_a_duplicate():
    event_id = uuid.uuid4()

    with transaction.atomic():
        first = record_in_inbox("notifications", event_id, "message.created")
    with transaction.atomic():
        again = record_in_inbox("notifications", event_id, "message.created")

    assert (first, again) == (True, False)
    assert InboxEntry.objects.filter(event_id=event_id).count() == 1


@pytest.mark.django_db
def test_the_same_event_is_new_for_another_consumer():
    event_id = uuid.uuid4()

    with transaction.atomic():
        assert record_in_inbox("notifications", event_id, "message.created")
        assert record_in_inbox("search-indexer", event_id, "message.created")


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_application_leaves_no_inbox_row():
    event_id = uuid.uuid4()
    with pytest.raises(RuntimeError), transaction.atomic():
        record_in_inbox("notifications", event_id, "message.created")
        raise RuntimeError("handler failed")

    with transaction.atomic():
        assert record_in_inbox("notifications", event_id, "message.created")


@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused():
    with pytest.raises(NotInTransaction):
        record_in_inbox("notifications", uuid.uuid4(), "message.created")
