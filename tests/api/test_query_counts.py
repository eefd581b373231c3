"""A list page costs the same number of queries whatever its length (no query per row)."""

from __future__ import annotations

import pytest

from messaging.models import Message, Notification

pytestmark = pytest.mark.django_db

# The token lookup (with its user), then the page itself.
LIST_QUERIES = 2


@pytest.fixture(autouse=True)
def page_fits_every_row(settings):
    settings.API_PAGE_SIZE = 50


@pytest.mark.parametrize("rows", [3, 30])
@pytest.mark.parametrize("query", ["", "?box=inbox", "?box=sent&unread=true"])
def test_the_message_list_costs_the_same_queries_for_3_and_30_rows(
    as_alice, alice, make_user, django_assert_num_queries, rows, query
):
    # Different senders and receivers, so a lazily loaded user would show as extra queries.
    others = [make_user() for _ in range(rows)]
    Message.objects.bulk_create(
        [Message(sender=alice, receiver=other, content=f"m{i}") for i, other in enumerate(others[: rows // 2])]
        + [Message(sender=other, receiver=alice, content=f"m{i}") for i, other in enumerate(others[rows // 2 :])]
    )

    with django_assert_num_queries(LIST_QUERIES):
        response = as_alice.get(f"/api/messages/{query}")

    assert response.status_code == 200
    if not query:
        assert len(response.json()["results"]) == rows
        assert {item["sender"]["username"] for item in response.json()["results"]} > {"alice"}


@pytest.mark.parametrize("rows", [3, 30])
def test_the_notification_list_costs_the_same_queries_for_3_and_30_rows(
    as_alice, alice, bob, django_assert_num_queries, rows
):
    messages = Message.objects.bulk_create([Message(sender=bob, receiver=alice, content=f"m{i}") for i in range(rows)])
    Notification.objects.bulk_create(
        [Notification(user=alice, message=message, title="New message from bob") for message in messages]
    )

    with django_assert_num_queries(LIST_QUERIES):
        response = as_alice.get("/api/notifications/")

    assert len(response.json()["results"]) == rows
