"""Event schemas at stable URLs, named by every event, and never changed in place once published."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from messaging.models import Message
from outbox.asyncapi import message_key
from outbox.envelope import data_schema_url
from outbox.schemas import registered_schemas, schema_of
from tests.helpers import get_messages, relay_pending_events


def path_of(url: str) -> str:
    return urlsplit(url).path


@pytest.mark.django_db
def test_every_registered_schema_is_served_at_its_url_without_authentication(client):
    for schema in registered_schemas():
        response = client.get(path_of(data_schema_url(schema.event_type, schema.version)))

        assert response.status_code == 200, schema
        assert response["Content-Type"] == "application/schema+json"
        assert response.json() == schema.schema


@pytest.mark.django_db
def test_an_unpublished_version_is_not_found(client):
    response = client.get(path_of(data_schema_url("message.created", 99)))

    assert response.status_code == 404


@pytest.mark.django_db
def test_a_relayed_event_names_the_url_its_data_schema_is_served_at(alice, bob, topology, broker_channel, client):
    Message.objects.create(sender=alice, receiver=bob, content="schema, please")
    relay_pending_events()
    [delivery] = get_messages(broker_channel, topology.queue_for("notifications"), expected=1)
    body = json.loads(delivery.body)

    assert body["dataschema"] == "http://127.0.0.1:8000/api/events/schemas/message.created/v1.json"
    assert client.get(path_of(body["dataschema"])).json() == schema_of("message.created", 1).schema


def test_the_schema_base_url_comes_from_the_setting(settings):
    settings.EVENT_SCHEMA_BASE_URL = "https://events.example.com/schemas"

    assert data_schema_url("message.read", 2) == "https://events.example.com/schemas/message.read/v2.json"


def published_schema_changes(published: dict, registered: dict) -> tuple[list[str], list[str]]:
    """The published versions whose registered schema differs, and those no longer registered."""
    changed = sorted(key for key in published if key in registered and registered[key] != published[key])
    withdrawn = sorted(key for key in published if key not in registered)
    return changed, withdrawn


def test_no_published_schema_version_is_changed_or_withdrawn(committed_document):
    # Published = in the committed docs/asyncapi.yaml. Consumers validate against those schemas:
    # a breaking change is a new version registered next to the old one, never an edit of it.
    registered = {message_key(schema): schema.schema for schema in registered_schemas()}

    changed, withdrawn = published_schema_changes(committed_document["components"]["schemas"], registered)

    assert changed == [], f"published schema versions changed in place (register a new version instead): {changed}"
    assert withdrawn == [], f"published schema versions withdrawn (keep them registered): {withdrawn}"


def test_an_edited_or_dropped_version_counts_as_a_change_and_a_new_one_does_not():
    published = {"a_v1": {"type": "object"}, "b_v1": {"type": "object"}}
    registered = {"a_v1": {"type": "object", "required": ["x"]}, "a_v2": {"type": "object"}}

    assert published_schema_changes(published, registered) == (["a_v1"], ["b_v1"])
