"""Sending is limited per user, in a cache every web process shares; nothing else is limited."""

from __future__ import annotations

import pytest
from django.db import connection

from messaging.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_per_minute(settings):
    settings.API_MESSAGE_CREATE_RATE = "2/minute"


def send(client, content: str = "hi"):
    return client.post("/api/messages/", {"receiver": "carol", "content": content})


def test_sending_past_the_rate_is_429_with_retry_after_and_writes_nothing(two_per_minute, as_alice, carol):
    assert [send(as_alice).status_code for _ in range(2)] == [201, 201]

    refused = send(as_alice, content="one too many")

    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"]
    assert not Message.objects.filter(content="one too many").exists()


def test_the_limit_is_per_user(two_per_minute, as_alice, as_bob, carol):
    for _ in range(2):
        send(as_alice)

    assert send(as_alice).status_code == 429
    assert send(as_bob).status_code == 201


def test_reading_is_not_limited(two_per_minute, as_alice, carol):
    for _ in range(2):
        send(as_alice)

    assert [as_alice.get("/api/messages/").status_code for _ in range(5)] == [200] * 5
    assert as_alice.get("/api/notifications/unread-count/").status_code == 200


def test_the_rate_follows_the_setting(settings, as_alice, carol):
    settings.API_MESSAGE_CREATE_RATE = "1/hour"

    assert send(as_alice).status_code == 201
    refused = send(as_alice)

    assert refused.status_code == 429
    assert 3000 < int(refused["Retry-After"]) <= 3600


def test_the_history_is_kept_in_the_shared_database_cache(as_alice, alice, carol):
    send(as_alice)

    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key FROM shared_cache")
        keys = [key for (key,) in cursor.fetchall()]

    assert any(f"throttle_message_create_{alice.pk}" in key for key in keys)
