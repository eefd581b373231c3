"""Outbox metrics in the web process: committed appends by event type, the backlog at scrape time."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

import outbox
from messaging.events import MESSAGE_CREATED, MESSAGE_READ
from messaging.models import Message
from outbox.models import OutboxEvent
from tests.helpers import append_read_events
from tests.scraping import parse, sample, value

pytestmark = pytest.mark.django_db

APPENDED = "outbox_events_appended_total"


def appended(event_type: str) -> float:
    return value(APPENDED, event_type=event_type)


def read_event_payload() -> dict:
    return {"message_id": str(uuid.uuid4()), "receiver_id": 1, "read_at": "2026-01-01T00:00:00Z"}


def test_committed_appends_are_counted_by_event_type(alice, bob, django_capture_on_commit_callbacks):
    created, read = appended(MESSAGE_CREATED), appended(MESSAGE_READ)

    with django_capture_on_commit_callbacks(execute=True):
        Message.objects.create(sender=alice, receiver=bob, content="hi")
        Message.objects.create(sender=alice, receiver=bob, content="hi again")
    with django_capture_on_commit_callbacks(execute=True):
        append_read_events(3)

    assert appended(MESSAGE_CREATED) - created == 2
    assert appended(MESSAGE_READ) - read == 3


@pytest.mark.django_db(transaction=True)
def test_appends_written_behind_are_counted_when_they_commit_and_not_when_rolled_back(alice, bob):
    created, read = appended(MESSAGE_CREATED), appended(MESSAGE_READ)

    Message.objects.create(sender=alice, receiver=bob, content="sent with its COMMIT")
    with transaction.atomic():
        message = Message.objects.create(sender=alice, receiver=bob, content="flushed before a statement")
        Message.objects.filter(pk=message.pk).exists()
    with pytest.raises(RuntimeError), transaction.atomic():
        Message.objects.create(sender=alice, receiver=bob, content="rolled back")
        Message.objects.filter(pk=message.pk).exists()  # flushed, then rolled back with the rest
        raise RuntimeError("the caller changed its mind")

    assert appended(MESSAGE_CREATED) - created == 2
    assert appended(MESSAGE_READ) == read


def test_an_append_is_counted_only_when_its_transaction_commits(django_capture_on_commit_callbacks):
    before = appended(MESSAGE_READ)

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        outbox.emit(
            aggregate_type="message", aggregate_id=uuid.uuid4(), event_type=MESSAGE_READ, payload=read_event_payload()
        )
        raise RuntimeError("the caller changed its mind")

    assert callbacks == []
    assert appended(MESSAGE_READ) == before


def test_web_metrics_report_the_backlog_as_the_selector_reads_it(client):
    append_read_events(1, occurred_at=timezone.now() - timedelta(minutes=10))
    append_read_events(2)
    dead = OutboxEvent.objects.order_by("id").last()
    OutboxEvent.objects.filter(pk=dead.pk).update(dead_at=timezone.now())

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = parse(response.content.decode())
    assert sample(samples, "outbox_pending_events") == 2
    assert sample(samples, "outbox_dead_events") == 1
    assert 600 <= sample(samples, "outbox_oldest_pending_age_seconds") < 3600


def test_an_empty_outbox_reports_no_backlog_and_no_age(client):
    samples = parse(client.get("/metrics").content.decode())

    assert sample(samples, "outbox_pending_events") == 0
    assert sample(samples, "outbox_oldest_pending_age_seconds") == 0
    assert sample(samples, "outbox_dead_events") == 0


def test_web_metrics_carry_no_content_ids_or_names(client, make_user, django_capture_on_commit_callbacks):
    sender, receiver = make_user("sender-name-7f3a"), make_user("receiver-name-9c1e")
    with django_capture_on_commit_callbacks(execute=True):
        message = Message.objects.create(sender=sender, receiver=receiver, content="the secret plan 4b2d")

    body = client.get("/metrics").content.decode()

    assert f'{APPENDED}{{event_type="message.created"}}' in body
    for private in ("the secret plan 4b2d", str(message.pk), "sender-name-7f3a", "receiver-name-9c1e"):
        assert private not in body
    event_id = str(OutboxEvent.objects.get().event_id)
    assert event_id not in body


def test_metrics_with_a_token_configured_refuse_requests_without_it(client, settings):
    settings.METRICS_TOKEN = "scrape-token-0123456789"

    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    basic = client.get("/metrics", HTTP_AUTHORIZATION="Basic scrape-token-0123456789")
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789")

    assert [missing.status_code, wrong.status_code, basic.status_code] == [401, 401, 401]
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert b"outbox_" not in missing.content
    assert right.status_code == 200
    assert sample(parse(right.content.decode()), "outbox_pending_events") == 0


def test_metrics_are_never_cached_and_refuse_writes(client):
    assert "no-store" in client.get("/metrics")["Cache-Control"]
    assert client.post("/metrics").status_code == 405


def test_web_metrics_say_where_the_relay_and_the_consumer_serve_theirs(client, settings):
    settings.RELAY_METRICS_PORT = 9100
    settings.CONSUMER_METRICS_PORT = 0
    settings.WORKER_METRICS_ADDRESS = "127.0.0.1"

    body = client.get("/metrics").content.decode()

    assert "# relay: http://127.0.0.1:9100/metrics\n" in body
    assert "# consumer: off (CONSUMER_METRICS_PORT=0)\n" in body
    # Comments only: the exposition still parses.
    assert parse(body)


def test_web_metrics_name_the_workers_port_when_they_listen_on_every_address(client, settings):
    settings.RELAY_METRICS_PORT = 9100
    settings.WORKER_METRICS_ADDRESS = "0.0.0.0"  # noqa: S104 - only named in the text

    body = client.get("/metrics").content.decode()

    assert "# relay: port 9100 of every relay host (/metrics)\n" in body
