"""Through the API, with the relay and the consumer as real processes: a sent message ends in
the receiver's notification, and reading it reaches that notification."""

from __future__ import annotations

import pytest

from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def notifications(client, query: str = "") -> list[dict]:
    response = client.get(f"/api/notifications/{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_a_message_sent_through_the_api_becomes_the_receivers_notification_and_its_read_follows(
    as_alice, as_bob, spawn_worker
):
    spawn_worker("relay")
    spawn_worker("consume_notifications")

    sent = as_alice.post("/api/messages/", {"receiver": "bob", "content": "Lunch at noon?"})
    assert sent.status_code == 201
    message_id = sent.json()["id"]

    (notification,) = wait_until(lambda: notifications(as_bob), timeout=30, what="bob's notification")
    assert notification["message"] == message_id
    assert notification["title"] == "New message from alice"
    assert notification["content"] == "Lunch at noon?"
    assert notification["is_read"] is False
    assert notifications(as_alice) == []
    assert as_bob.get("/api/notifications/unread-count/").json() == {"unread": 1}

    assert as_bob.post(f"/api/messages/{message_id}/read/").status_code == 200

    wait_until(
        lambda: notifications(as_bob, "?unread=false"), timeout=30, what="the message.read to reach the notification"
    )
    assert as_bob.get("/api/notifications/unread-count/").json() == {"unread": 0}
