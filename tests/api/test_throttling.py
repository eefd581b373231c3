"""Sending is limited per user, counted in PostgreSQL where every web process counts; nothing else is limited."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from messaging import services
from messaging.models import Message, SendLimitWindow
from tests.helpers import clear_of_window_end

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_per_minute(settings):
    settings.API_MESSAGE_CREATE_RATE = "2/minute"
    clear_of_window_end(60)


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
    clear_of_window_end(3600)

    assert send(as_alice).status_code == 201
    refused = send(as_alice)

    assert refused.status_code == 429
    # A fixed window: the wait is to the end of the current hour.
    to_the_hour = 3600 - time.time() % 3600
    assert abs(int(refused["Retry-After"]) - to_the_hour) <= 2


def test_switching_between_token_and_session_counts_against_one_limit(two_per_minute, as_alice, alice, carol):
    browser = APIClient(enforce_csrf_checks=False)
    browser.force_login(alice)

    assert send(as_alice).status_code == 201
    assert send(browser).status_code == 201

    assert send(browser).status_code == 429
    assert send(as_alice).status_code == 429


def test_the_count_is_one_row_per_user_and_window(two_per_minute, as_alice, alice, carol):
    for _ in range(3):
        send(as_alice)

    window = SendLimitWindow.objects.get(user=alice)
    assert (window.period_seconds, window.sends) == (60, 3)
    assert window.window_start.second == 0


def test_a_new_window_forgets_the_users_earlier_windows(alice, bob):
    long_ago = timezone.now() - timezone.timedelta(days=2)
    SendLimitWindow.objects.create(user=alice, period_seconds=60, window_start=long_ago, sends=60)
    SendLimitWindow.objects.create(user=bob, period_seconds=60, window_start=long_ago, sends=60)

    count = services.count_message_send(alice, 60)

    assert count.sends == 1
    assert 0 < count.seconds_left <= 60
    assert list(SendLimitWindow.objects.filter(user=alice).values_list("sends", flat=True)) == [1]
    assert SendLimitWindow.objects.filter(user=bob).count() == 1
