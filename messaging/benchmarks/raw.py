"""The machine's own limit: minimal hand-written loops with raw psycopg and py-amqp.

They do what the relay and the consumer do at their core and nothing else: claim → publish with
batched confirms → mark published; and insert → ack. The benchmark divides our figures by these.
"""

from __future__ import annotations

import time

import amqp
import psycopg
from kombu.utils.url import url_to_parts

from outbox.models import OutboxEvent

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
                    f"SELECT id, event_id, event_type, payload::text FROM {table} "
                    "WHERE published_at IS NULL AND dead_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    [batch_size],
                )
                rows = cursor.fetchall()
                if not rows:
                    break
                for _, event_id, event_type, payload in rows:
                    body = f'{{"specversion":"1.0","id":"{event_id}","type":"{event_type}","data":{payload}}}'
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


def raw_consumer(dsn: str, broker_url: str, queue: str, expected: int, prefetch: int) -> tuple[int, float]:
    """Consume `expected` messages: batch insert their ids, commit, ack; (settled, seconds)."""
    broker = _amqp_connection(broker_url)
    channel = broker.channel()
    channel.basic_qos(0, prefetch, False)
    received: list[amqp.Message] = []
    channel.basic_consume(queue, callback=received.append)
    settled = 0
    with psycopg.connect(dsn) as db:
        db.execute(f"CREATE TABLE IF NOT EXISTS {SINK_TABLE} (event_id uuid PRIMARY KEY)")
        db.commit()
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
            with db.transaction():
                db.execute(
                    f"INSERT INTO {SINK_TABLE} SELECT unnest(%s::uuid[]) ON CONFLICT DO NOTHING",
                    [[message.properties["message_id"] for message in batch]],
                )
            channel.basic_ack(batch[-1].delivery_tag, multiple=True)
            settled += len(batch)
        elapsed = time.perf_counter() - started
        db.execute(f"DROP TABLE {SINK_TABLE}")
        db.commit()
    broker.close()
    return settled, elapsed
