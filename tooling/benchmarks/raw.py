"""The machine's own limit: minimal hand-written loops with raw psycopg and py-amqp.

They do what the relay and the consumer do at their core and nothing else: claim → publish with
batched confirms → mark published; and insert the same inbox, notification and notification-event rows → commit →
ack, with no envelope or schema checks and no framework. The benchmark divides our figures by
these. `raw_sink_consumer` only inserts each event id into a bare table: the broker-and-commit
floor of any consumer, printed for reference.
"""

from __future__ import annotations

import json
import time

import amqp
import psycopg
from kombu.utils.url import url_to_parts

from messaging.models import Message, Notification
from outbox.models import InboxEntry, OutboxEvent

SINK_TABLE = "bench_raw_sink"


def _amqp_connection(broker_url: str) -> amqp.Connection:
    parts = url_to_parts(broker_url)
    connection = amqp.Connection(
        host=f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}",
        userid=parts.username or "guest",
        password=parts.password or "guest",
        virtual_host=parts.path or "/",
    )
    connection.connect()
    return connection


def raw_relay(dsn: str, broker_url: str, exchange: str, batch_size: int) -> tuple[int, float]:
    """Drain every pending event; (events published, seconds)."""
    table = OutboxEvent._meta.db_table
    broker = _amqp_connection(broker_url)
    channel = broker.channel()
    channel.confirm_select()
    unconfirmed: set[int] = set()

    def on_ack(tag: int, multiple: bool) -> None:
        if multiple:
            unconfirmed.difference_update([t for t in unconfirmed if t <= tag])
        else:
            unconfirmed.discard(tag)

    channel.events["basic_ack"].add(on_ack)
    next_tag = 1
    published = 0
    with psycopg.connect(dsn) as db:
        started = time.perf_counter()
        while True:
            with db.transaction(), db.cursor() as cursor:
                cursor.execute(
                    f"SELECT id, event_id, aggregate_id, event_type, payload::text FROM {table} "
                    "WHERE published_at IS NULL AND dead_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    [batch_size],
                )
                rows = cursor.fetchall()
                if not rows:
                    break
                for outbox_id, event_id, aggregate_id, event_type, payload in rows:
                    body = (
                        f'{{"specversion":"1.0","id":"{event_id}","type":"{event_type}","subject":"{aggregate_id}",'
                        f'"sequence":"{outbox_id:020d}","data":{payload}}}'
                    )
                    channel.basic_publish(
                        amqp.Message(body.encode(), message_id=str(event_id), delivery_mode=2),
                        exchange=exchange,
                        routing_key=event_type,
                        mandatory=True,
                    )
                    unconfirmed.add(next_tag)
                    next_tag += 1
                while unconfirmed:
                    broker.drain_events(timeout=10)
                cursor.execute(
                    f"UPDATE {table} SET published_at = now() WHERE id = ANY(%s)", [[row[0] for row in rows]]
                )
                published += len(rows)
        elapsed = time.perf_counter() - started
    broker.close()
    return published, elapsed


# The consumer's own writes, hand-written: the inbox row and the receiver's notification.
_RAW_INBOX_SQL = f"""
    INSERT INTO {InboxEntry._meta.db_table} (consumer, event_id, event_type, subject, sequence, processed_at)
    SELECT 'bench-raw', b.event_id, b.type, b.subject, b.sequence::bigint, now()
    FROM jsonb_to_recordset(%s::jsonb) AS b(event_id uuid, type text, subject text, sequence text)
    ON CONFLICT (consumer, event_id) DO NOTHING
"""
# And, as ours does, each new notification's notification.created event in the outbox, in the
# same statement (the schema check and the envelope are ours alone, as for the consumed events).
_RAW_NOTIFICATIONS_SQL = f"""
    WITH created AS (
        INSERT INTO {Notification._meta.db_table}
            (notification_id, user_id, message_id, notification_type, title, content, is_read, created_at,
             source_event_id)
        SELECT gen_random_uuid(), m.receiver_id, m.message_id, 'message', 'New message from ' || b.sender,
               left(b.content, 100), m.is_read, now(), b.event_id
        FROM jsonb_to_recordset(%s::jsonb) AS b(event_id uuid, message_id uuid, sender text, content text)
        JOIN {Message._meta.db_table} m ON m.message_id = b.message_id
        ON CONFLICT (source_event_id) DO NOTHING
        RETURNING *
    )
    INSERT INTO {OutboxEvent._meta.db_table}
        (event_id, aggregate_type, aggregate_id, event_type, schema_version, occurred_at, payload, headers,
         attempts, last_error)
    SELECT gen_random_uuid(), 'notification', c.notification_id::text, 'notification.created', 1, now(),
           jsonb_build_object('notification_id', c.notification_id, 'user_id', c.user_id,
                              'message_id', c.message_id, 'notification_type', c.notification_type,
                              'title', c.title, 'content', c.content, 'is_read', c.is_read,
                              'created_at', c.created_at),
           '{{}}'::jsonb, 0, ''
    FROM created c
"""


def _consume(broker_url: str, queue: str, expected: int, prefetch: int, settle) -> tuple[int, float]:
    broker = _amqp_connection(broker_url)
    channel = broker.channel()
    channel.basic_qos(0, prefetch, False)
    received: list[amqp.Message] = []
    channel.basic_consume(queue, callback=received.append)
    settled = 0
    started = None
    while settled < expected:
        broker.drain_events(timeout=10)
        started = started or time.perf_counter()
        while len(received) < prefetch:
            try:
                broker.drain_events(timeout=0.0005)
            except TimeoutError:
                break
        batch, received[:] = list(received), []
        settle(batch)
        channel.basic_ack(batch[-1].delivery_tag, multiple=True)
        settled += len(batch)
    elapsed = time.perf_counter() - started
    broker.close()
    return settled, elapsed


def raw_consumer(dsn: str, broker_url: str, queue: str, expected: int, prefetch: int) -> tuple[int, float]:
    """Consume `expected` events: their inbox rows and notifications in one transaction, then ack."""
    with psycopg.connect(dsn) as db:

        def settle(batch: list[amqp.Message]) -> None:
            events = [json.loads(message.body) for message in batch]
            inbox = [
                {"event_id": e["id"], "type": e["type"], "subject": e["subject"], "sequence": e["sequence"]}
                for e in events
            ]
            created = [
                {
                    "event_id": e["id"],
                    "message_id": e["data"]["message_id"],
                    "sender": e["data"]["sender_username"],
                    "content": e["data"]["content"],
                }
                for e in events
                if e["type"] == "message.created"
            ]
            with db.transaction():
                db.execute(_RAW_INBOX_SQL, [json.dumps(inbox)])
                db.execute(_RAW_NOTIFICATIONS_SQL, [json.dumps(created)])

        return _consume(broker_url, queue, expected, prefetch, settle)


def raw_sink_consumer(dsn: str, broker_url: str, queue: str, expected: int, prefetch: int) -> tuple[int, float]:
    """Consume `expected` messages: batch insert their ids into a bare table, commit, ack."""
    with psycopg.connect(dsn) as db:
        db.execute(f"CREATE TABLE IF NOT EXISTS {SINK_TABLE} (event_id uuid PRIMARY KEY)")
        db.commit()

        def settle(batch: list[amqp.Message]) -> None:
            with db.transaction():
                db.execute(
                    f"INSERT INTO {SINK_TABLE} SELECT unnest(%s::uuid[]) ON CONFLICT DO NOTHING",
                    [[message.properties["message_id"] for message in batch]],
                )

        try:
            return _consume(broker_url, queue, expected, prefetch, settle)
        finally:
            db.execute(f"DROP TABLE {SINK_TABLE}")
            db.commit()
