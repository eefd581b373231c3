"""Listing, reading one, reading all and counting notifications; others' are 404."""

from __future__ import annotations

import uuid

import pytest

from messaging import services
from messaging.models import Notification

pytestmark = pytest.mark.django_db

NOTIFICATIONS = "/api/notifications/"


def notify(user, *, is_read: bool = False, title: str = "New message") -> Notification:
    # Built here by hand; in production the consumer builds them from message events.
    return Notification.objects.create(user=user, title=title, content="preview", is_read=is_read)


@pytest.fixture
def bobs(bob) -> dict[str, Notification]:
    return {"read": notify(bob, is_read=True), "unread": notify(bob), "unread_too": notify(bob)}


@pytest.fixture
def carols(carol) -> Notification:
    return notify(carol)


def listed(client, query: str = "") -> list[str]:
    response = client.get(f"{NOTIFICATIONS}{query}")
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", ["unread_too", "unread", "read"]), ("?unread=true", ["unread_too", "unread"]), ("?unread=false", ["read"])],
)
def test_bob_lists_only_his_notifications_newest_first(as_bob, bobs, carols, query, expected):
    assert listed(as_bob, query) == [str(bobs[name].pk) for name in expected]


def test_a_listed_notification_shows_its_fields(as_alice, alice, bob):
    message = services.send_message(sender=bob, receiver=alice, content="hello")
    notification = Notification.objects.create(
        user=alice, message=message, title="New message from bob", content="hello"
    )

    (item,) = as_alice.get(NOTIFICATIONS).json()["results"]

    assert item == {
        "id": str(notification.pk),
        "type": "message",
        "title": "New message from bob",
        "content": "hello",
        "message": str(message.pk),
        "is_read": False,
        "created_at": item["created_at"],
    }


@pytest.mark.parametrize(("query", "field"), [("?unread=perhaps", "unread"), ("?box=inbox", "box")])
def test_invalid_filters_are_a_400(as_bob, query, field):
    response = as_bob.get(f"{NOTIFICATIONS}{query}")

    assert response.status_code == 400
    assert field in response.json()


def test_marking_a_notification_read_is_idempotent(as_bob, bobs):
    unread = bobs["unread"]

    first = as_bob.post(f"{NOTIFICATIONS}{unread.pk}/read/")
    second = as_bob.post(f"{NOTIFICATIONS}{unread.pk}/read/")

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["is_read"] is True
    assert second.json() == first.json()
    unread.refresh_from_db()
    assert unread.is_read is True
    assert Notification.objects.get(pk=bobs["unread_too"].pk).is_read is False


def test_another_users_notification_is_not_found_and_stays_unread(as_bob, carols):
    response = as_bob.post(f"{NOTIFICATIONS}{carols.pk}/read/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    carols.refresh_from_db()
    assert carols.is_read is False


@pytest.mark.parametrize("bad_id", [str(uuid.uuid4()), "not-a-uuid", "7"])
def test_an_unknown_or_malformed_notification_id_is_a_404(as_bob, bad_id):
    assert as_bob.post(f"{NOTIFICATIONS}{bad_id}/read/").status_code == 404


def test_read_all_marks_only_my_unread_notifications_and_says_how_many(as_bob, bobs, carols):
    response = as_bob.post(f"{NOTIFICATIONS}read-all/")

    assert response.status_code == 200
    assert response.json() == {"marked_read": 2}
    assert not Notification.objects.filter(user=bobs["read"].user, is_read=False).exists()
    carols.refresh_from_db()
    assert carols.is_read is False
    assert as_bob.post(f"{NOTIFICATIONS}read-all/").json() == {"marked_read": 0}


def test_unread_count_counts_only_my_unread_notifications(as_bob, as_carol, bobs, carols):
    assert as_bob.get(f"{NOTIFICATIONS}unread-count/").json() == {"unread": 2}
    assert as_carol.get(f"{NOTIFICATIONS}unread-count/").json() == {"unread": 1}

    as_bob.post(f"{NOTIFICATIONS}{bobs['unread'].pk}/read/")

    assert as_bob.get(f"{NOTIFICATIONS}unread-count/").json() == {"unread": 1}


def test_notification_pages_follow_the_configured_size(as_bob, bob, settings):
    settings.API_PAGE_SIZE = 2
    made = [notify(bob, title=f"n{i}") for i in range(3)]

    first = as_bob.get(NOTIFICATIONS).json()
    second = as_bob.get(first["next"]).json()

    assert [item["id"] for item in first["results"] + second["results"]] == [str(n.pk) for n in reversed(made)]
    assert second["next"] is None
