"""Sending, listing, reading one and marking read: each rule, and what other users cannot do."""

from __future__ import annotations

import base64
import uuid

import pytest

from messaging import services
from messaging.events import MESSAGE_CREATED, MESSAGE_READ
from messaging.models import Message
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

MESSAGES = "/api/messages/"


def events_of(message_id) -> list[str]:
    events = OutboxEvent.objects.filter(aggregate_type="message", aggregate_id=str(message_id))
    return list(events.order_by("id").values_list("event_type", flat=True))


def send(client, receiver: str = "bob", content: str = "Lunch at noon?"):
    return client.post(MESSAGES, {"receiver": receiver, "content": content})


@pytest.fixture
def message(alice, bob) -> Message:
    return services.send_message(sender=alice, receiver=bob, content="Lunch at noon?")


# --- sending --------------------------------------------------------------------------------


def test_sending_returns_the_message_and_appends_its_created_event(as_alice, alice, bob):
    response = send(as_alice)

    assert response.status_code == 201
    body = response.json()
    assert body["sender"] == {"id": alice.pk, "username": "alice"}
    assert body["receiver"] == {"id": bob.pk, "username": "bob"}
    assert body["content"] == "Lunch at noon?"
    assert body["is_read"] is False
    message = Message.objects.get(pk=body["id"])
    assert (message.sender, message.receiver) == (alice, bob)
    assert events_of(message.pk) == [MESSAGE_CREATED]


def test_sending_keeps_the_whitespace_around_the_content(as_alice, bob):
    response = send(as_alice, content="  indented\n")

    assert response.json()["content"] == "  indented\n"


def test_content_of_exactly_the_maximum_length_is_accepted(as_alice, bob):
    response = send(as_alice, content="x" * 10_000)

    assert response.status_code == 201


def test_the_maximum_length_follows_the_setting(as_alice, bob, settings):
    settings.MESSAGE_MAX_LENGTH = 20

    assert send(as_alice, content="x" * 20).status_code == 201
    response = send(as_alice, content="x" * 21)

    assert response.status_code == 400
    assert response.json() == {"content": ["Message content may be at most 20 characters long, not 21."]}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"receiver": "bob", "content": ""}, {"content": ["This field may not be blank."]}),
        ({"receiver": "bob", "content": " \n\t "}, {"content": [services.BLANK_CONTENT]}),
        (
            {"receiver": "bob", "content": "x" * 10_001},
            {"content": ["Message content may be at most 10000 characters long, not 10001."]},
        ),
        ({"receiver": "bob", "content": "nul\x00byte"}, {"content": ["Null characters are not allowed."]}),
        ({"receiver": "bob", "content": ["a", "list"]}, {"content": ["Not a valid string."]}),
        ({"receiver": "nobody", "content": "hi"}, {"receiver": [services.INACTIVE_RECEIVER]}),
        ({"receiver": "", "content": "hi"}, {"receiver": ["This field may not be blank."]}),
        ({}, {"receiver": ["This field is required."], "content": ["This field is required."]}),
        (
            {"receiver": "bob", "content": "hi", "sender": "mallory", "is_read": True},
            {"sender": ["Unknown field."], "is_read": ["Unknown field."]},
        ),
        (
            {"receiver": "nobody", "content": "", "extra": 1},
            {
                "receiver": [services.INACTIVE_RECEIVER],
                "content": ["This field may not be blank."],
                "extra": ["Unknown field."],
            },
        ),
    ],
    ids=[
        "empty",
        "whitespace",
        "too-long",
        "nul",
        "not-a-string",
        "unknown-receiver",
        "blank-receiver",
        "missing",
        "unknown-fields",
        "all-at-once",
    ],
)
def test_invalid_messages_are_refused_with_the_reason_per_field_and_nothing_written(as_alice, bob, body, errors):
    response = as_alice.post(MESSAGES, body)

    assert response.status_code == 400
    assert response.json() == errors
    assert not Message.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_an_inactive_receiver_is_refused_like_an_unknown_one(as_alice, make_user):
    make_user("dormant", is_active=False)

    response = send(as_alice, receiver="dormant")

    assert response.status_code == 400
    assert response.json() == {"receiver": [services.INACTIVE_RECEIVER]}


def test_a_message_to_yourself_is_a_400_naming_the_receiver_and_writes_nothing(as_alice):
    response = send(as_alice, receiver="alice")

    assert response.status_code == 400
    assert response.json() == {"receiver": [services.SELF_RECEIVER]}
    assert not Message.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_the_service_refuses_a_message_to_its_sender(alice):
    with pytest.raises(services.ValidationError) as refused:
        services.send_message(sender=alice, receiver=alice, content="note to self")

    assert refused.value.message_dict == {"receiver": [services.SELF_RECEIVER]}
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("body", "detail"),
    [("[1, 2]", "non_field_errors"), ('"just a string"', "non_field_errors"), ("{not json", "detail")],
)
def test_a_body_that_is_not_a_json_object_is_a_400(as_alice, body, detail):
    response = as_alice.post(MESSAGES, body, content_type="application/json")

    assert response.status_code == 400
    assert detail in response.json()


def test_a_body_that_is_not_json_is_a_415(as_alice, bob):
    response = as_alice.post(MESSAGES, {"receiver": "bob", "content": "hi"}, format="multipart")

    assert response.status_code == 415


def test_the_service_applies_the_same_rules_to_every_caller(alice, make_user):
    dormant = make_user("dormant", is_active=False)

    with pytest.raises(services.ValidationError) as refused:
        services.send_message(sender=alice, receiver=dormant, content="   ")

    assert refused.value.message_dict == {
        "content": [services.BLANK_CONTENT],
        "receiver": [services.INACTIVE_RECEIVER],
    }


# --- reading one ----------------------------------------------------------------------------


@pytest.mark.parametrize("reader", ["as_alice", "as_bob"])
def test_sender_and_receiver_can_read_a_message(request, message, reader):
    response = request.getfixturevalue(reader).get(f"{MESSAGES}{message.pk}/")

    assert response.status_code == 200
    assert response.json()["id"] == str(message.pk)
    assert response.json()["content"] == "Lunch at noon?"


def test_another_users_message_is_not_found_rather_than_forbidden(as_carol, message):
    response = as_carol.get(f"{MESSAGES}{message.pk}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_an_unknown_message_id_is_not_found(as_alice):
    assert as_alice.get(f"{MESSAGES}{uuid.uuid4()}/").status_code == 404


@pytest.mark.parametrize("bad_id", ["42", "not-a-uuid", "%00", "1234567890abcdef1234567890abcdef1"])
def test_a_malformed_message_id_is_a_json_404(as_alice, bad_id):
    for url in (f"{MESSAGES}{bad_id}/", f"{MESSAGES}{bad_id}/read/"):
        response = as_alice.get(url) if not url.endswith("read/") else as_alice.post(url)

        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}


# --- marking read ---------------------------------------------------------------------------


def test_the_receiver_marks_a_message_read_through_mark_read_with_one_event(as_bob, message):
    response = as_bob.post(f"{MESSAGES}{message.pk}/read/")

    assert response.status_code == 200
    assert response.json()["is_read"] is True
    message.refresh_from_db()
    assert message.is_read is True
    assert events_of(message.pk) == [MESSAGE_CREATED, MESSAGE_READ]


def test_marking_a_read_message_read_again_is_200_and_appends_no_second_event(as_bob, message):
    first = as_bob.post(f"{MESSAGES}{message.pk}/read/")
    second = as_bob.post(f"{MESSAGES}{message.pk}/read/")

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == first.json()
    assert events_of(message.pk) == [MESSAGE_CREATED, MESSAGE_READ]


def test_the_sender_cannot_mark_the_message_read(as_alice, message):
    response = as_alice.post(f"{MESSAGES}{message.pk}/read/")

    assert response.status_code == 403
    assert response.json() == {"detail": services.ONLY_RECEIVER_READS}
    message.refresh_from_db()
    assert message.is_read is False
    assert events_of(message.pk) == [MESSAGE_CREATED]


def test_another_user_cannot_mark_a_message_read_and_gets_404(as_carol, message):
    response = as_carol.post(f"{MESSAGES}{message.pk}/read/")

    assert response.status_code == 404
    message.refresh_from_db()
    assert message.is_read is False
    assert events_of(message.pk) == [MESSAGE_CREATED]


def test_marking_read_ignores_a_body(as_bob, message):
    response = as_bob.post(f"{MESSAGES}{message.pk}/read/", {"is_read": False})

    assert response.status_code == 200
    assert response.json()["is_read"] is True


# --- listing --------------------------------------------------------------------------------


@pytest.fixture
def conversation(alice, bob, carol) -> dict[str, Message]:
    """alice→bob (unread), bob→alice (read), alice→bob (read), carol→bob: named by what they test."""
    messages = {
        "to_bob_unread": services.send_message(sender=alice, receiver=bob, content="one"),
        "to_alice_read": services.send_message(sender=bob, receiver=alice, content="two"),
        "to_bob_read": services.send_message(sender=alice, receiver=bob, content="three"),
        "carol_to_bob": services.send_message(sender=carol, receiver=bob, content="four"),
    }
    Message.objects.filter(pk__in=[messages["to_alice_read"].pk, messages["to_bob_read"].pk]).mark_read()
    return messages


def listed(client, query: str = "") -> list[str]:
    response = client.get(f"{MESSAGES}{query}")
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


def ids(conversation, *names) -> list[str]:
    # The list is newest first: reverse the order the fixture wrote them in.
    return [str(conversation[name].pk) for name in reversed(list(conversation)) if name in names]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["to_bob_unread", "to_alice_read", "to_bob_read"]),
        ("?box=inbox", ["to_alice_read"]),
        ("?box=sent", ["to_bob_unread", "to_bob_read"]),
        ("?unread=true", ["to_bob_unread"]),
        ("?unread=false", ["to_alice_read", "to_bob_read"]),
        ("?box=sent&unread=true", ["to_bob_unread"]),
        ("?box=inbox&unread=true", []),
    ],
)
def test_alice_lists_her_messages_by_box_and_read_state_newest_first(as_alice, conversation, query, expected):
    assert listed(as_alice, query) == ids(conversation, *expected)


def test_a_list_never_shows_other_users_messages(as_carol, conversation):
    assert listed(as_carol) == ids(conversation, "carol_to_bob")


@pytest.mark.parametrize(
    ("query", "field"),
    [("?box=outbox", "box"), ("?unread=maybe", "unread"), ("?unread=", "unread"), ("?page=2", "page")],
)
def test_invalid_filters_are_a_400_naming_the_parameter(as_alice, query, field):
    response = as_alice.get(f"{MESSAGES}{query}")

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("cursor", ["x", "o=-1", "p=not-a-timestamp", "p=2026-02-30T00:00:00", "p=\x00"])
def test_a_malformed_or_crafted_cursor_is_a_404(as_alice, cursor):
    encoded = cursor if cursor == "x" else base64.b64encode(cursor.encode()).decode()

    response = as_alice.get(MESSAGES, {"cursor": encoded})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_pages_follow_the_configured_size_and_cover_every_message_once(as_bob, alice, bob, settings):
    settings.API_PAGE_SIZE = 2
    sent = [services.send_message(sender=alice, receiver=bob, content=f"m{i}") for i in range(5)]

    seen, url, pages = [], MESSAGES + "?box=inbox", 0
    while url:
        body = as_bob.get(url).json()
        assert len(body["results"]) <= 2
        seen += [item["id"] for item in body["results"]]
        url, pages = body["next"], pages + 1

    assert pages == 3
    assert seen == [str(message.pk) for message in reversed(sent)]
