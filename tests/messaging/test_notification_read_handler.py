"""The seed's notification-read handler: a log line and a counter, never the content."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from messaging import services
from messaging.models import Message, Notification


def reads_counted() -> float:
    return REGISTRY.get_sample_value("messaging_notifications_read_total") or 0.0


@pytest.fixture
def notification(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="the secret plan")
    return Notification.objects.create(
        user=bob, message=message, title="New message from alice", content="the secret plan"
    )


@pytest.mark.django_db
def test_marking_a_notification_read_logs_and_counts_it_without_content(notification, caplog):
    loaded = Notification.objects.get(pk=notification.pk)
    before = reads_counted()

    with caplog.at_level(logging.INFO, logger="messaging.services"):
        loaded.is_read = True
        loaded.save()

    assert reads_counted() == before + 1
    assert f"notification.read notification_id={notification.pk}" in caplog.text
    assert "secret plan" not in caplog.text


@pytest.mark.django_db
def test_saving_a_notification_that_was_already_read_is_not_counted_again(notification):
    loaded = Notification.objects.get(pk=notification.pk)
    loaded.is_read = True
    loaded.save()
    before = reads_counted()

    loaded.save()
    Notification.objects.get(pk=notification.pk).save()

    assert reads_counted() == before


@pytest.mark.django_db
def test_bulk_marking_read_counts_each_notification_flipped(notification, alice, bob):
    other = Notification.objects.create(user=bob, title="t", content="c", notification_type="system")
    Notification.objects.filter(pk=other.pk).update(is_read=True)
    before = reads_counted()

    flipped = services.mark_notifications_read(Notification.objects.all())

    assert flipped == 1
    assert reads_counted() == before + 1
