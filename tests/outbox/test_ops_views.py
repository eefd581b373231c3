"""The ops dashboard's views: the snapshot as a page and as JSON for staff who may view outbox events,
a dead event sent again for staff who may change them (the admin's rule, `outbox.permissions`)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from outbox.models import OutboxEvent
from tests.helpers import append_read_events

pytestmark = pytest.mark.django_db

PAGES = ("/ops/", "/ops/status.json")


def staff_with(make_user, *codenames: str):
    user = make_user(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="outbox", codename__in=codenames))
    return user


@pytest.fixture
def staff(make_user):
    """Staff who may operate the outbox: the change permission on events."""
    return staff_with(make_user, "change_outboxevent")


@pytest.fixture
def viewer(make_user):
    """Staff who may only look: the view permission on events."""
    return staff_with(make_user, "view_outboxevent")


@pytest.fixture
def bare_staff(make_user):
    """Staff with no permission on outbox events (they may use other parts of the admin)."""
    return staff_with(make_user)


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    return client


def dead_event() -> OutboxEvent:
    event = append_read_events(1)[0]
    OutboxEvent.objects.filter(pk=event.pk).update(dead_at=timezone.now(), attempts=8, last_error="NOT_ROUTED")
    return event


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_users_are_sent_to_the_admin_login(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"


def test_anonymous_users_cannot_send_a_dead_event_again(client):
    event = dead_event()

    response = client.post("/ops/dead-events/retry/", {"event_id": event.id})

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert OutboxEvent.objects.get(pk=event.pk).dead_at is not None


@pytest.mark.parametrize("path", PAGES)
def test_signed_in_users_who_are_not_staff_are_refused(client, make_user, path):
    client.force_login(make_user())

    assert client.get(path).status_code == 403


def test_users_who_are_not_staff_cannot_send_a_dead_event_again(client, make_user):
    event = dead_event()
    client.force_login(make_user())

    response = client.post("/ops/dead-events/retry/", {"event_id": event.id})

    assert response.status_code == 403
    assert OutboxEvent.objects.get(pk=event.pk).dead_at is not None


@pytest.mark.parametrize("path", PAGES)
def test_staff_without_a_permission_on_outbox_events_are_refused(client, bare_staff, path):
    client.force_login(bare_staff)

    response = client.get(path)

    assert response.status_code == 403


@pytest.mark.parametrize("user", ["bare_staff", "viewer"])
def test_staff_without_the_change_permission_cannot_send_a_dead_event_again(client, request, user):
    event = dead_event()
    client.force_login(request.getfixturevalue(user))

    response = client.post("/ops/dead-events/retry/", {"event_id": event.id})

    assert response.status_code == 403
    assert OutboxEvent.objects.get(pk=event.pk).dead_at is not None


def test_view_only_staff_see_the_page_without_send_again_buttons(client, viewer, broker_namespace):
    event = dead_event()
    client.force_login(viewer)

    response = client.get("/ops/")

    assert response.status_code == 200
    page = response.content.decode()
    embedded = page.split('<script id="ops-snapshot" type="application/json">')[1].split("</script>")[0]
    assert json.loads(embedded)["dead_events"][0]["id"] == event.id
    assert "data-retry-url" not in page
    assert "data-csrf-token" not in page
    assert "Sending one again needs the change permission on outbox events" in page


def test_view_only_staff_read_the_snapshot_as_json(client, viewer, broker_namespace):
    append_read_events(2)
    client.force_login(viewer)

    response = client.get("/ops/status.json")

    assert response.status_code == 200
    assert response.json()["backlog"]["pending"] == 2


def test_a_superuser_sends_a_dead_event_again(client, make_user, broker_namespace):
    event = dead_event()
    client.force_login(make_user(is_staff=True, is_superuser=True))

    response = client.post("/ops/dead-events/retry/", {"event_id": event.id})

    assert response.status_code == 302
    assert OutboxEvent.objects.get(pk=event.pk).state == "pending"


def test_staff_see_the_page_with_the_snapshot_embedded(staff_client, broker_namespace):
    event = dead_event()
    append_read_events(2)

    response = staff_client.get("/ops/")

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    page = response.content.decode()
    assert '<span class="value" id="backlog-pending">2</span>' in page
    assert "/static/outbox/ops.js" in page
    assert 'data-retry-url="/ops/dead-events/retry/"' in page
    assert "<em>Send again</em> makes one pending" in page
    embedded = page.split('<script id="ops-snapshot" type="application/json">')[1].split("</script>")[0]
    assert json.loads(embedded)["dead_events"][0]["id"] == event.id


def test_staff_read_the_snapshot_as_json(staff_client, broker_namespace):
    append_read_events(3)

    response = staff_client.get("/ops/status.json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["backlog"]["pending"] == 3


def test_sending_a_dead_event_again_needs_the_csrf_token(staff_client):
    event = dead_event()

    response = staff_client.post("/ops/dead-events/retry/", {"event_id": event.id})

    assert response.status_code == 403
    assert OutboxEvent.objects.get(pk=event.pk).dead_at is not None


def test_staff_send_a_dead_event_again(staff_client, broker_namespace):
    event, other = dead_event(), dead_event()
    staff_client.get("/ops/")
    token = staff_client.cookies["csrftoken"].value

    response = staff_client.post("/ops/dead-events/retry/", {"event_id": event.id, "csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert response["Location"] == "/ops/"
    resent = OutboxEvent.objects.get(pk=event.pk)
    assert (resent.dead_at, resent.attempts, resent.state) == (None, 0, "pending")
    assert OutboxEvent.objects.get(pk=other.pk).dead_at is not None, "only the event asked for"
    page = staff_client.get("/ops/").content.decode()
    assert f"Event {event.id} is pending again" in page


@pytest.mark.parametrize("event_id", ["abc", "", "-3"])
def test_a_malformed_event_id_is_refused_with_a_clear_error(client, staff, event_id):
    client.force_login(staff)

    response = client.post("/ops/dead-events/retry/", {"event_id": event_id})

    assert response.status_code == 400
    assert "event_id must be an outbox event id" in response.content.decode()


def test_an_event_that_is_not_dead_or_does_not_exist_is_not_sent_and_the_page_says_why(client, staff, broker_namespace):
    pending = append_read_events(1)[0]
    client.force_login(staff)

    client.post("/ops/dead-events/retry/", {"event_id": pending.id})
    client.post("/ops/dead-events/retry/", {"event_id": pending.id + 1000})
    page = client.get("/ops/").content.decode()

    assert f"Event {pending.id} is not dead (it is pending); nothing was sent." in page
    assert f"There is no outbox event {pending.id + 1000}." in page


def test_the_retry_endpoint_takes_only_posts(client, staff):
    client.force_login(staff)

    assert client.get("/ops/dead-events/retry/").status_code == 405


def test_the_page_says_where_the_workers_serve_their_metrics(staff_client, settings, broker_namespace):
    settings.RELAY_METRICS_PORT = 9100
    settings.CONSUMER_METRICS_PORT = 9101
    settings.WORKER_METRICS_ADDRESS = "127.0.0.1"

    page = staff_client.get("/ops/").content.decode()

    assert "relay http://127.0.0.1:9100/metrics; consumer http://127.0.0.1:9101/metrics" in page
