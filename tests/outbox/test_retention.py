"""The retention path: the only way events leave the table, and never pending ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from outbox.models import OutboxEvent
from outbox.retention import delete_published_events
from tests.helpers import append_read_events


@pytest.mark.django_db(transaction=True)
def test_retention_deletes_old_published_events_in_batches_and_keeps_the_rest():
    old = append_read_events(5)
    recent = append_read_events(2)
    pending = append_read_events(3)
    OutboxEvent.objects.filter(pk__in=[e.pk for e in old]).update(published_at=timezone.now() - timedelta(days=10))
    OutboxEvent.objects.filter(pk__in=[e.pk for e in recent]).update(published_at=timezone.now())
    progress: list[int] = []

    deleted = delete_published_events(timedelta(days=7), batch_size=2, on_progress=progress.append)

    assert deleted == 5
    assert progress == [2, 2, 1]
    remaining = set(OutboxEvent.objects.values_list("pk", flat=True))
    assert remaining == {e.pk for e in recent + pending}


@pytest.mark.django_db(transaction=True)
def test_delete_guard_is_back_in_force_after_retention():
    events = append_read_events(1)
    OutboxEvent.objects.filter(pk=events[0].pk).update(published_at=timezone.now())
    delete_published_events(timedelta(days=7))

    with pytest.raises(Exception, match="retention path"):
        OutboxEvent.objects.filter(pk=events[0].pk).delete()


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_to_delete_a_pending_event_even_for_retention():
    import pgtrigger
    from django.db import DatabaseError

    from outbox.models import DELETE_GUARD_URI

    events = append_read_events(1)
    with pytest.raises(DatabaseError, match="not published yet"), pgtrigger.ignore(DELETE_GUARD_URI):
        OutboxEvent.objects.filter(pk=events[0].pk).delete()

    assert OutboxEvent.objects.filter(pk=events[0].pk).exists()
