"""The AsyncAPI document: generated, committed, served, valid for the official parser, true to the wire."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from messaging.consumers import NotificationsConsumer
from messaging.contract import COMMITTED_DOCUMENT, asyncapi_document, asyncapi_yaml
from messaging.models import Message
from messaging.topology import NOTIFICATIONS_CONSUMER
from outbox import tracing
from outbox.asyncapi import message_key
from outbox.envelope import CONTENT_TYPE
from outbox.schemas import registered_schemas, schema_of
from tests.helpers import get_messages, relay_pending_events

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_TESTS = ROOT / "contract-tests"


def test_the_committed_asyncapi_document_is_current():
    # On failure: run `python manage.py asyncapi` and commit docs/asyncapi.yaml.
    call_command("asyncapi", "--check")


def test_the_check_fails_on_a_stale_document(tmp_path):
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(COMMITTED_DOCUMENT.read_text().replace("message.read v1", "message.read v0"))

    with pytest.raises(CommandError, match="is not current"):
        call_command("asyncapi", "--check", "--output", str(stale))


def test_the_official_asyncapi_parser_finds_the_document_valid():
    assert shutil.which("node"), "node 20 is needed for the contract tests"
    assert (CONTRACT_TESTS / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "contract-tests/node_modules is missing: run scripts/test (or `npm ci` in contract-tests/)"
    )

    result = subprocess.run(
        ["node", "validate-asyncapi.mjs", str(COMMITTED_DOCUMENT)],
        cwd=CONTRACT_TESTS,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(registered_schemas())} message(s)" in result.stdout


def test_the_parser_check_refuses_a_broken_document(tmp_path):
    broken = yaml.safe_load(COMMITTED_DOCUMENT.read_text())
    del broken["channels"]["message_created"]
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))

    result = subprocess.run(
        ["node", "validate-asyncapi.mjs", str(path)], cwd=CONTRACT_TESTS, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 1
    assert "invalid" in result.stdout


def test_the_document_has_one_message_per_event_type_and_version(committed_document):
    messages = committed_document["components"]["messages"]

    assert set(messages) == {message_key(schema) for schema in registered_schemas()}
    for schema in registered_schemas():
        payload = messages[message_key(schema)]["payload"]
        assert payload["properties"]["type"]["const"] == schema.event_type
        assert payload["properties"]["schemaversion"]["const"] == schema.version
        assert committed_document["components"]["schemas"][message_key(schema)] == schema.schema


@pytest.mark.django_db
def test_the_document_is_served_as_json_and_yaml_without_authentication(client):
    as_json = client.get("/api/events/asyncapi.json")
    as_yaml = client.get("/api/events/asyncapi.yaml")

    assert as_json.status_code == as_yaml.status_code == 200
    assert as_json.json() == asyncapi_document()
    assert as_yaml["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.content) == as_json.json()


def payload_validator(document: dict, key: str) -> Draft7Validator:
    """A validator of one message's payload, its `$ref`s resolved inside the document."""
    registry = Registry().with_resource("urn:asyncapi", Resource.from_contents(document, default_specification=DRAFT7))
    return Draft7Validator({"$ref": f"urn:asyncapi#/components/messages/{key}/payload"}, registry=registry)


@pytest.mark.django_db
@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
def test_every_delivery_on_the_wire_matches_its_message_definition(
    alice, bob, topology, broker_channel, every_event_queue, committed_document, request, traced
):
    # Every type: the message's two events, and the two its notification gets from the consumer.
    # Traced, each carries the CloudEvents distributed-tracing attributes, which the document defines.
    if traced:
        request.getfixturevalue("spans")
        with tracing.tracer().start_as_current_span("request"):
            message = Message.objects.create(sender=alice, receiver=bob, content="Hello, wire")
    else:
        message = Message.objects.create(sender=alice, receiver=bob, content="Hello, wire")
    consumer = NotificationsConsumer()
    for _ in range(2):
        relay_pending_events()
        for delivery in get_messages(broker_channel, topology.queue_for(NOTIFICATIONS_CONSUMER), expected=1):
            consumer.settle([delivery])
        message.is_read = True
        message.save()
    relay_pending_events()

    deliveries = get_messages(broker_channel, every_event_queue, expected=4)

    seen = set()
    for delivery in deliveries:
        body = json.loads(delivery.body)
        key = message_key(schema_of(body["type"], body["schemaversion"]))
        errors = [error.message for error in payload_validator(committed_document, key).iter_errors(body)]
        assert errors == []
        assert ("traceparent" in body) is traced
        assert ("traceparent" in delivery.headers) is traced
        definition = committed_document["components"]["messages"][key]
        assert delivery.properties["content_type"] == definition["contentType"] == CONTENT_TYPE
        assert delivery.properties["content_encoding"] == definition["bindings"]["amqp"]["contentEncoding"]
        assert delivery.properties["type"] == definition["bindings"]["amqp"]["messageType"]
        assert delivery.properties["message_id"] == body["id"]
        channel_id = key.rsplit("_v", 1)[0]
        channel = committed_document["channels"][channel_id]
        assert delivery.delivery_info["routing_key"] == channel["address"]
        assert delivery.delivery_info["exchange"] == topology.events.name
        operation = committed_document["operations"][f"publish_{channel_id}"]
        assert delivery.properties["delivery_mode"] == operation["bindings"]["amqp"]["deliveryMode"]
        seen.add(body["type"])
        delivery.ack()
    assert seen == {schema.event_type for schema in registered_schemas()}


def test_with_partitions_the_document_shows_the_partition_queues_as_our_consumers(settings, tmp_path):
    settings.CONSUMER_PARTITIONS = 4
    document = asyncapi_document()
    addresses = {channel["address"] for channel in document["channels"].values()}
    channel = document["channels"]["queue_notifications"]

    assert "messaging.notifications" not in addresses
    assert channel["address"] == "messaging.notifications.p{partition}"
    assert "0 to 3" in channel["parameters"]["partition"]["description"]
    assert "CONSUMER_PARTITIONS" in channel["description"]
    assert channel["x-hash-exchange"]["name"] == "messaging.notifications.partitions"
    # Other teams still read the events exchange's channels, unchanged.
    assert (
        document["channels"]["message_created"]
        == yaml.safe_load(COMMITTED_DOCUMENT.read_text())["channels"]["message_created"]
    )
    path = tmp_path / "partitioned.yaml"
    path.write_text(asyncapi_yaml())
    result = subprocess.run(
        ["node", "validate-asyncapi.mjs", str(path)], cwd=CONTRACT_TESTS, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
