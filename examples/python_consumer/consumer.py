"""A consumer of the messaging service's events in plain Python: kombu, jsonschema, SQLite. No Django.

It binds a durable queue of its own to the events exchange, validates each CloudEvent's `data`
against the schema its `dataschema` URL serves (fetched once per URL, only from the service's
schema base URL), applies each event once (the event id is the primary key of an SQLite table,
written in the transaction that applies it, before the ack) and prints one line per delivery:

    applied type=message.created subject=<message id> sequence=00000000000000000042 id=<event id>
    duplicate id=<event id>
    rejected id=<event id or -> reason=<why>

Run it with `python consumer.py --help`; it needs `pip install -r requirements.txt`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import sys
import urllib.request

from jsonschema import Draft7Validator, FormatChecker
from kombu import Connection, Exchange, Queue

REQUIRED_ATTRIBUTES = ("id", "source", "type", "subject", "time", "dataschema", "sequence")


class Rejected(Exception):
    """A delivery this consumer never applies; the reason is printed and the delivery dead-lettered."""


# --- the inbox: each event applied once ---------------------------------------------------------


def open_inbox(path: str) -> sqlite3.Connection:
    database = sqlite3.connect(path, isolation_level=None)
    database.execute(
        "CREATE TABLE IF NOT EXISTS applied_events ("
        " event_id TEXT PRIMARY KEY, type TEXT NOT NULL, subject TEXT NOT NULL, sequence TEXT NOT NULL)"
    )
    return database


def apply_once(database: sqlite3.Connection, event: dict) -> bool:
    """Record the event and apply it in one transaction; False when it was applied before."""
    with database:  # one transaction: the inbox row and the effect commit together
        database.execute("BEGIN")
        cursor = database.execute(
            "INSERT INTO applied_events (event_id, type, subject, sequence) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (event_id) DO NOTHING",
            (event["id"], event["type"], event["subject"], event["sequence"]),
        )
        if cursor.rowcount == 0:
            return False
        # Your effect goes here, in the same transaction (this example only prints it).
        print(
            f"applied type={event['type']} subject={event['subject']} sequence={event['sequence']} id={event['id']}",
            flush=True,
        )
        return True


# --- checking a delivery ------------------------------------------------------------------------


class SchemaCache:
    """Validators of the schemas the events name, fetched once per URL and only from `base_url`."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._validators: dict[str, Draft7Validator] = {}

    def validator_for(self, url: str) -> Draft7Validator:
        if not url.startswith(self.base_url):
            raise Rejected("dataschema is not one of the service's schemas")
        if url not in self._validators:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - an http(s) base URL we trust
                schema = json.load(response)
            self._validators[url] = Draft7Validator(schema, format_checker=FormatChecker())
        return self._validators[url]


def check_event(body: bytes, schemas: SchemaCache) -> dict:
    """The CloudEvent in `body` (structured mode), its data valid; raise `Rejected` otherwise."""
    try:
        event = json.loads(body)
    except ValueError:
        raise Rejected("not JSON") from None
    if not isinstance(event, dict) or event.get("specversion") != "1.0":
        raise Rejected("not a CloudEvents 1.0 document")
    missing = [name for name in REQUIRED_ATTRIBUTES if not isinstance(event.get(name), str) or not event[name]]
    if missing or "data" not in event:
        raise Rejected(f"missing attributes {missing or ['data']}")
    errors = sorted(schemas.validator_for(event["dataschema"]).iter_errors(event["data"]), key=str)
    if errors:
        where = "/".join(str(part) for part in errors[0].absolute_path) or "(root)"
        raise Rejected(f"data at {where} fails {errors[0].validator!r}")
    return event


def event_id_of(body: bytes) -> str:
    """The id a refused delivery claims, for the report; `-` when it names none."""
    try:
        document = json.loads(body)
    except ValueError:
        return "-"
    return str(document.get("id", "-")) if isinstance(document, dict) else "-"


# --- the loop -----------------------------------------------------------------------------------


def main() -> None:
    options = parse_arguments()
    schemas = SchemaCache(options.schema_base_url)
    database = open_inbox(options.database)
    exchange = Exchange(options.exchange, type="topic", durable=True)
    # A quorum queue: replicated, and it counts redeliveries.
    queue_arguments = {"x-queue-type": "quorum"}
    if options.dead_letter_exchange:
        # What this consumer refuses is kept there to be looked at, instead of being dropped.
        queue_arguments["x-dead-letter-exchange"] = options.dead_letter_exchange
    queue = Queue(
        options.queue,
        exchange=exchange,
        routing_key=options.binding_key,
        durable=True,
        queue_arguments=queue_arguments,
    )
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def on_message(body, message) -> None:
        try:
            event = check_event(message.body, schemas)
            if not apply_once(database, event):
                print(f"duplicate id={event['id']}", flush=True)
        except Rejected as exc:
            print(f"rejected id={event_id_of(message.body)} reason={exc}", flush=True)
            message.reject(requeue=False)
            return
        message.ack()  # only after the inbox transaction committed

    with (
        Connection(options.broker_url, heartbeat=30) as connection,
        connection.Consumer([queue], callbacks=[on_message], accept=None, prefetch_count=50),
    ):
        print(f"ready queue={options.queue} binding={options.binding_key}", flush=True)
        while not stopping:
            try:
                connection.drain_events(timeout=1)
            except TimeoutError:
                connection.heartbeat_check()


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker-url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--exchange", default="messaging.events")
    parser.add_argument("--queue", default="example-team.python-consumer")
    parser.add_argument("--binding-key", default="message.*", help="topic pattern of the event types to receive")
    parser.add_argument("--dead-letter-exchange", default="", help="your exchange for the deliveries refused")
    parser.add_argument("--schema-base-url", default="http://127.0.0.1:8000/api/events/schemas")
    parser.add_argument("--database", default="inbox.sqlite3", help="the SQLite file that remembers applied events")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
