"""The example consumers (plain Python, node) against the real relay: every event once, in order.

They share no code with the service: each binds a queue of its own, fetches the schemas from the
URLs the events name (served here by a live server) and prints what it applied and refused.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from kombu import Producer
from rest_framework.test import APIClient

from messaging import services
from outbox.envelope import CONTENT_TYPE, encode_event
from outbox.models import OutboxEvent
from outbox.services import OUTGOING_EVENT_COLUMNS, outgoing_event
from tests.helpers import stop_processes, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
APPLIED = re.compile(r"^applied type=(\S+) subject=(\S+) sequence=(\d+) id=(\S+)$")
MESSAGES = 4


class ExampleConsumer:
    """One example consumer process and what it printed."""

    def __init__(self, name: str, command: list[str], *, env: dict, log: Path, cwd: Path) -> None:
        self.name = name
        self.log = log
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def applied(self) -> list[dict]:
        return [
            dict(zip(("type", "subject", "sequence", "id"), match.groups(), strict=True))
            for line in self.lines()
            if (match := APPLIED.match(line))
        ]

    def printed(self, prefix: str) -> list[str]:
        return [line for line in self.lines() if line.startswith(prefix)]

    def wait_for(self, predicate, what: str) -> None:
        def check():
            assert self.process.poll() is None, f"the {self.name} example exited:\n{self.log.read_text()}"
            return predicate()

        try:
            wait_until(check, timeout=60, what=f"the {self.name} example: {what}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nit printed:\n{self.log.read_text()}") from None


@pytest.fixture
def schema_base_url(live_server, settings) -> str:
    """The live server's schema URLs: what the relay names and the examples fetch."""
    settings.EVENT_SCHEMA_BASE_URL = f"{live_server.url}/api/events/schemas"
    return settings.EVENT_SCHEMA_BASE_URL


@pytest.fixture
def examples(topology, broker_namespace, broker_channel, schema_base_url, tmp_path, settings):
    """Both example consumers, each on a queue of its own bound to `message.*`; stopped and deleted after."""
    assert shutil.which("node"), "node 20 is needed for the node example"
    assert (EXAMPLES / "node_consumer" / "node_modules" / "amqplib").is_dir(), (
        "examples/node_consumer/node_modules is missing: run scripts/test (or `npm ci` in examples/node_consumer/)"
    )
    queues = {"python": f"{broker_namespace}example.python", "node": f"{broker_namespace}example.node"}
    python = ExampleConsumer(
        "python",
        [
            sys.executable,
            "consumer.py",
            f"--broker-url={settings.BROKER_URL}",
            f"--exchange={topology.events.name}",
            f"--queue={queues['python']}",
            f"--schema-base-url={schema_base_url}",
            f"--database={tmp_path / 'inbox.sqlite3'}",
        ],
        # Nothing of the service on its path, so that an import of it would fail.
        env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
        log=tmp_path / "python-example.log",
        cwd=EXAMPLES / "python_consumer",
    )
    node = ExampleConsumer(
        "node",
        ["node", "consumer.mjs"],
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "BROKER_URL": settings.BROKER_URL,
            "EVENTS_EXCHANGE": topology.events.name,
            "QUEUE": queues["node"],
            "SCHEMA_BASE_URL": schema_base_url,
        },
        log=tmp_path / "node-example.log",
        cwd=EXAMPLES / "node_consumer",
    )
    consumers = [python, node]
    try:
        for consumer in consumers:
            consumer.wait_for(lambda c=consumer: c.printed("ready "), "its queue bound")
        yield consumers
    finally:
        stop_processes([consumer.process for consumer in consumers])
        for queue in queues.values():
            broker_channel.queue_delete(queue)


def api_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {services.issue_api_token(user)}")
    return client


def wire_body(event: OutboxEvent) -> bytes:
    """The body the relay published for `event`, as a redelivery would bring it again."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {OUTGOING_EVENT_COLUMNS} FROM {OutboxEvent._meta.db_table} WHERE id = %s", [event.id])
        return encode_event(outgoing_event(cursor.fetchone()), source="/messaging-service")


def test_the_example_consumers_apply_every_event_once_in_order_and_refuse_the_invalid_one(
    alice, bob, spawn_worker, examples, topology, broker_channel, schema_base_url
):
    spawn_worker("relay", env={"EVENT_SCHEMA_BASE_URL": schema_base_url})
    as_alice, as_bob = api_client(alice), api_client(bob)
    sent = [as_alice.post("/api/messages/", {"receiver": "bob", "content": f"note {n}"}) for n in range(MESSAGES)]
    assert [response.status_code for response in sent] == [201] * MESSAGES
    for response in sent:
        assert as_bob.post(f"/api/messages/{response.json()['id']}/read/").status_code == 200
    events = list(OutboxEvent.objects.order_by("id"))
    assert len(events) == 2 * MESSAGES

    for consumer in examples:
        consumer.wait_for(lambda c=consumer: len(c.applied()) >= len(events), f"{len(events)} events applied")

    # A redelivered event, and one whose data breaks its schema.
    producer = Producer(broker_channel, exchange=topology.events, serializer=None)
    producer.publish(wire_body(events[0]), routing_key=events[0].event_type, content_type=CONTENT_TYPE)
    invalid = json.loads(wire_body(events[1]))
    invalid.update(id="0b6f4a4e-0000-4000-8000-000000000001", data={"message_id": "not-a-uuid"})
    producer.publish(json.dumps(invalid).encode(), routing_key=invalid["type"], content_type=CONTENT_TYPE)
    producer.publish(b"not a cloudevent", routing_key="message.read", content_type=CONTENT_TYPE)

    for consumer in examples:
        consumer.wait_for(
            lambda c=consumer: len(c.printed("duplicate ")) == 1 and len(c.printed("rejected ")) == 2,
            "the duplicate absorbed and both bad deliveries refused",
        )
        applied = consumer.applied()
        assert [event["id"] for event in applied if event["id"] == invalid["id"]] == [], consumer.name
        assert sorted(event["id"] for event in applied) == sorted(str(event.event_id) for event in events)
        for subject in {event["subject"] for event in applied}:
            mine = [event for event in applied if event["subject"] == subject]
            assert [event["type"] for event in mine] == ["message.created", "message.read"], consumer.name
            assert [event["sequence"] for event in mine] == sorted(event["sequence"] for event in mine)
        assert consumer.printed("duplicate ") == [f"duplicate id={events[0].event_id}"]
        rejected = consumer.printed("rejected ")
        assert any(line.startswith(f"rejected id={invalid['id']} reason=data at ") for line in rejected), rejected
        assert any("not" in line and "id=- " in line for line in rejected), rejected


def test_the_examples_import_nothing_of_the_service():
    service = {"django", "messaging", "outbox", "relay", "config", "tooling"}
    tree = ast.parse((EXAMPLES / "python_consumer" / "consumer.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])

    assert imported & service == set()
    node_source = (EXAMPLES / "node_consumer" / "consumer.mjs").read_text()
    assert set(re.findall(r'from "([^"]+)"', node_source)) == {"amqplib", "ajv", "ajv-formats", "cloudevents"}
