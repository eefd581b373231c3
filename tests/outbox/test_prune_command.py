"""outbox_prune: retention in small batches, never pending or dead events."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from outbox.models import InboxEntry, OutboxEvent
from tests.helpers import append_read_events


@pytest.mark.django_db(transaction=True)
def test_prune_deletes_old_published_events_and_inbox_rows_only(capsys):
    old, pending, dead = append_read_events(5), append_read_events(2), append_read_events(1)
    long_ago = timezone.now() - timedelta(days=30)
    OutboxEvent.objects.filter(pk__in=[e.pk for e in old]).update(published_at=long_ago)
    OutboxEvent.objects.filter(pk=dead[0].pk).update(dead_at=long_ago)
    InboxEntry.objects.create(consumer="c", event_id=uuid.uuid4(), event_type="t", processed_at=long_ago)
    recent = InboxEntry.objects.create(consumer="c", event_id=uuid.uuid4(), event_type="t")

    call_command("outbox_prune", "--older-than", "7d", "--batch-size", "2")

    assert "deleted 5 published events, 1 inbox entries" in capsys.readouterr().out
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {e.pk for e in pending + dead}
    assert list(InboxEntry.objects.all()) == [recent]
