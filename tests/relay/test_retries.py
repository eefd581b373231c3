"""Failed publishes: retried with backoff, parked dead, never blocking others, order kept."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections, transaction
from django.utils import timezone

from messaging.models import Message
from outbox.models import OutboxEvent
from outbox.services import claim_batch, claim_pending_events
from tests.helpers import get_messages, register_schema_for_this_test, relay_pending_events, wait_until

TOO_LONG = "x" * 5000


@pytest.fixture
def small_event_limit(settings):
    """Events over 2 KB cannot be published: a message with TOO_LONG content is poison."""
    settings.OUTBOX_MAX_EVENT_BYTES = 2048
    return settings


def event_of(message, event_type="message.created") -> OutboxEvent:
    return OutboxEvent.objects.get(aggregate_id=str(message.pk), event_type=event_type)


def assert_failed_alone(bad: OutboxEvent, fine_message, error: str) -> None:
    """`bad` stayed pending with `error` recorded, and the message sent beside it was published."""
    bad.refresh_from_db()
    assert bad.published_at is None
    assert error in bad.last_error
    assert event_of(fine_message).published_at is not None


def make_due(*events: OutboxEvent) -> None:
    past = timezone.now() - timedelta(hours=1)
    OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(next_attempt_at=past)


@pytest.mark.django_db
def test_a_failed_event_is_scheduled_for_a_later_attempt_with_its_error(alice, bob, topology, small_event_limit):
    small_event_limit.OUTBOX_RETRY_BASE_SECONDS = 10
    poison = Message.objects.create(sender=alice, receiver=bob, content=TOO_LONG)
    before = timezone.now()

    relay_pending_events()

    event = event_of(poison)
    assert event.published_at is None
    assert event.dead_at is None
    assert event.attempts == 1
    assert "over the 2048-byte limit" in event.last_error
    # Jittered between half and all of base * 2**0.
    assert before + timedelta(seconds=5) <= event.next_attempt_at <= timezone.now() + timedelta(seconds=10)
    with transaction.atomic():
        assert claim_pending_events(10) == []


@pytest.mark.django_db
def test_backoff_grows_exponentially_with_the_attempts(alice, bob, topology, small_event_limit):
    small_event_limit.OUTBOX_RETRY_BASE_SECONDS = 10
    small_event_limit.OUTBOX_RETRY_MAX_SECONDS = 1000
    poison = Message.objects.create(sender=alice, receiver=bob, content=TOO_LONG)
    OutboxEvent.objects.filter(pk=event_of(poison).pk).update(attempts=3)
    before = timezone.now()

    relay_pending_events()

    delay = event_of(poison).next_attempt_at - before
    assert timedelta(seconds=40) <= delay <= timedelta(seconds=81)


@pytest.mark.django_db
def test_an_event_is_parked_dead_after_the_last_attempt(alice, bob, topology, small_event_limit, caplog):
    small_event_limit.OUTBOX_MAX_ATTEMPTS = 3
    poison = Message.objects.create(sender=alice, receiver=bob, content=TOO_LONG)

    for _ in range(3):
        make_due(event_of(poison))
        relay_pending_events()

    event = event_of(poison)
    assert event.attempts == 3
    assert event.dead_at is not None
    assert event.published_at is None
    assert "over the 2048-byte limit" in event.last_error
    assert f"relay.event_dead event={event.pk}" in caplog.text


@pytest.mark.django_db
def test_a_failing_event_never_blocks_the_events_of_other_aggregates(
    alice, bob, topology, broker_channel, small_event_limit
):
    poison = Message.objects.create(sender=alice, receiver=bob, content=TOO_LONG)
    fine = [Message.objects.create(sender=alice, receiver=bob, content=f"fine {i}") for i in range(3)]

    relay_pending_events()

    assert all(event_of(message).published_at for message in fine)
    assert event_of(poison).published_at is None
    delivered = get_messages(broker_channel, topology.queue_for("notifications"), expected=3)
    assert [json.loads(m.body)["subject"] for m in delivered] == [str(m.pk) for m in fine]


@pytest.mark.django_db
def test_later_events_of_an_aggregate_wait_behind_its_failing_event_and_keep_their_order(
    alice, bob, topology, broker_channel, small_event_limit
):
    message = Message.objects.create(sender=alice, receiver=bob, content=TOO_LONG)
    message.is_read = True
    message.save()

    relay_pending_events()
    assert event_of(message, "message.read").published_at is None  # held back, not failed
    assert event_of(message, "message.read").attempts == 0

    small_event_limit.OUTBOX_MAX_EVENT_BYTES = 1024 * 1024  # the operator raises the limit
    make_due(event_of(message))
    relay_pending_events()

    delivered = get_messages(broker_channel, topology.queue_for("notifications"), expected=2)
    assert [json.loads(m.body)["type"] for m in delivered] == ["message.created", "message.read"]


@pytest.mark.django_db
def test_a_dead_event_no_longer_holds_its_aggregate(alice, bob, topology, small_event_limit):
    small_event_limit.OUTBOX_MAX_ATTEMPTS = 1
    message = Message.objects.create(sender=alice, receiver=bob, content=TOO_LONG)
    message.is_read = True
    message.save()

    relay_pending_events()
    relay_pending_events()

    assert event_of(message).dead_at is not None
    assert event_of(message, "message.read").published_at is not None


@pytest.mark.django_db
def test_outbox_retry_lists_and_resends_dead_events_by_filter(alice, bob, topology, small_event_limit, capsys):
    small_event_limit.OUTBOX_MAX_ATTEMPTS = 1
    first = Message.objects.create(sender=alice, receiver=bob, content=TOO_LONG)
    second = Message.objects.create(sender=alice, receiver=bob, content=TOO_LONG)
    relay_pending_events()

    call_command("outbox_retry", "--list")
    listed = capsys.readouterr().out
    assert "2 dead events" in listed
    assert "over the 2048-byte limit" in listed
    assert all(event_of(m).dead_at for m in (first, second))

    call_command("outbox_retry", "--aggregate-id", str(first.pk))
    assert "1 dead events are pending again" in capsys.readouterr().out
    resent = event_of(first)
    assert (resent.dead_at, resent.attempts) == (None, 0)
    assert event_of(second).dead_at is not None

    small_event_limit.OUTBOX_MAX_EVENT_BYTES = 1024 * 1024
    relay_pending_events()
    assert event_of(first).published_at is not None


@pytest.mark.django_db
def test_outbox_retry_says_so_when_nothing_matches(capsys):
    call_command("outbox_retry", "--event-type", "message.read")

    assert "no dead events match" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_a_claim_left_idle_past_its_hold_limit_loses_its_batch_to_the_others(alice, bob):
    Message.objects.create(sender=alice, receiver=bob, content="held")
    claimed = threading.Event()
    release = threading.Event()

    def hang_holding_a_batch() -> None:
        try:
            with transaction.atomic():
                assert claim_batch(10, hold_limit=1).events
                claimed.set()
                release.wait(30)  # hung: no query, transaction open
        except Exception:  # noqa: BLE001, S110 - its session was ended under it, as intended
            pass
        finally:
            connections.close_all()

    hung = threading.Thread(target=hang_holding_a_batch)
    hung.start()
    try:
        assert claimed.wait(10)
        with transaction.atomic():
            assert claim_pending_events(10) == []  # still locked by the hung relay

        def claimable() -> bool:
            with transaction.atomic():
                return bool(claim_pending_events(10))

        wait_until(claimable, timeout=15, interval=0.2, what="PostgreSQL to end the hung relay's session")
    finally:
        release.set()
        hung.join(10)


@pytest.mark.django_db
def test_an_event_whose_headers_amqp_cannot_encode_fails_alone(alice, bob, topology, broker_channel):
    from messaging.events import MESSAGE_READ
    from outbox.services import emit

    with transaction.atomic():
        bad = emit(
            aggregate_type="message",
            aggregate_id="unencodable",
            event_type=MESSAGE_READ,
            payload={
                "message_id": "00000000-0000-0000-0000-000000000000",
                "receiver_id": 1,
                "read_at": "2026-01-01T00:00:00Z",
            },
            headers={"too_big_for_amqp": 2**70},
        )
    fine = Message.objects.create(sender=alice, receiver=bob, content="fine")

    relay_pending_events()

    assert_failed_alone(bad, fine, "cannot be encoded for AMQP")
    [delivered] = get_messages(broker_channel, topology.queue_for("notifications"), expected=1)
    assert json.loads(delivered.body)["subject"] == str(fine.pk)


@pytest.mark.django_db
def test_an_event_whose_type_is_too_long_for_a_routing_key_fails_alone(alice, bob, topology, monkeypatch):
    # 90 characters fit the column, but as UTF-8 they are 270 bytes, past AMQP's 255 for a key.
    from outbox.services import emit

    long_type = "€" * 90
    register_schema_for_this_test(monkeypatch, long_type, {"type": "object"})
    with transaction.atomic():
        bad = emit(aggregate_type="thing", aggregate_id="1", event_type=long_type, payload={})
    fine = Message.objects.create(sender=alice, receiver=bob, content="fine")

    relay_pending_events()

    assert_failed_alone(bad, fine, "cannot be encoded for AMQP: error")
