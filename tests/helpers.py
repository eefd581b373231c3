"""Test helpers: waiting on a condition with a deadline, reading a real queue."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from kombu import Consumer, Producer

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.05, what: str = "") -> T:
    """Return the first truthy value of `predicate()`; fail the test when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate!r}; last value {value!r}")
        time.sleep(interval)


def env_with_broker(env: dict[str, str], url: str) -> dict[str, str]:
    """`env` with every broker role pointed at `url`: BROKER_URL set, the roles' own URLs dropped."""
    from outbox.broker import ROLE_URL_SETTINGS

    return {**{key: value for key, value in env.items() if key not in ROLE_URL_SETTINGS}, "BROKER_URL": url}


def clear_of_window_end(period_seconds: int, margin: float = 10.0) -> None:
    """Wait until the send limit's current fixed window has more than `margin` seconds left.

    A test that sends up to the limit and one more must do it inside one window.
    """
    wait_until(
        lambda: period_seconds - time.time() % period_seconds > margin,
        timeout=margin + 1,
        what=f"a {period_seconds}s window with {margin}s left",
    )


def register_schema_for_this_test(
    monkeypatch, event_type: str, schema: dict, *, aggregate_id_key: str | None = None
) -> None:
    """Register `schema` as version 1 of `event_type` until the test ends (the registry is process-wide)."""
    from outbox import schemas

    # Both of the registry's tables: the schemas, and each type's newest version.
    monkeypatch.setattr(schemas, "_registry", dict(schemas._registry))
    monkeypatch.setattr(schemas, "_latest", dict(schemas._latest))
    schemas.register_event_schema(
        schemas.EventSchema(event_type=event_type, version=1, schema=schema, aggregate_id_key=aggregate_id_key)
    )


def get_messages(channel, queue, *, expected: int, timeout: float = 10.0) -> list:
    """Take `expected` messages off `queue` unacked, waiting up to `timeout` for them.

    Consumes rather than polls: quorum queues with a single active consumer refuse basic.get.
    The messages stay unacked on `channel` until the test acks, rejects or closes it.
    """
    messages: list = []
    consumer = Consumer(channel, queues=[queue], on_message=messages.append, accept=None)
    consumer.qos(prefetch_count=expected)
    consumer.consume()

    def take() -> bool:
        with contextlib.suppress(TimeoutError):
            channel.connection.drain_events(timeout=0.05)
        return len(messages) >= expected

    try:
        wait_until(take, timeout=timeout, interval=0, what=f"{expected} messages on {queue.name}")
    finally:
        consumer.cancel()
    return messages


def queue_depth(channel, queue) -> int:
    """Messages ready in `queue` (a passive declare reads the count)."""
    _, count, _ = channel.queue_declare(queue=queue.name, passive=True)
    return count


def other_database_session():
    """A psycopg connection of its own (autocommit) to the test database: another client's view."""
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    return psycopg.connect(
        dbname=params["dbname"], user=params["user"], host=params["host"], port=params["port"], autocommit=True
    )


@contextlib.contextmanager
def sleeping_relay_session():
    """A session as a sleeping relay holds it: LISTENing, with a wake slot, its gate closed."""
    from outbox import wake_gate
    from outbox.models import NOTIFY_CHANNEL

    with other_database_session() as session:
        session.execute(f"LISTEN {NOTIFY_CHANNEL}")
        slot = wake_gate.take_slot(session)
        assert slot is not None, "every wake slot is taken: a relay of another test still runs"
        wake_gate.limit_gate_wait(session, 5)
        assert wake_gate.close_gate(session, slot)
        yield session


def terminate_other_database_sessions() -> int:
    """Kill every other session on the test database, as a failover or an admin would."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def append_read_events(count: int, *, occurred_at=None, headers=None) -> list:
    """Append `count` message.read events on fresh aggregates, in one transaction."""
    import uuid

    from django.db import transaction

    import outbox
    from messaging.events import MESSAGE_READ

    with transaction.atomic():
        return [
            outbox.emit(
                aggregate_type="message",
                aggregate_id=uuid.uuid4(),
                event_type=MESSAGE_READ,
                payload={"message_id": str(uuid.uuid4()), "receiver_id": 1, "read_at": "2026-01-01T00:00:00Z"},
                occurred_at=occurred_at,
                headers=headers,
            )
            for _ in range(count)
        ]


def relay_pending_events() -> None:
    """Publish everything pending with an in-process relay, then close its connection."""
    from relay.relay import Relay

    relay = Relay()
    try:
        relay.drain()
    finally:
        relay.publisher.close()


@contextlib.contextmanager
def claim_held_by_another_relay(batch_size: int):
    """Another relay's claim: a thread claims up to `batch_size` events on its own connection and
    holds them, its transaction open, until the block ends. Yields the claimed ids."""
    import threading

    from django.db import connections, transaction

    from outbox.services import claim_pending_events

    held, release = threading.Event(), threading.Event()
    claimed: list[int] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                claimed.extend(event.id for event in claim_pending_events(batch_size))
                held.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10), "the other relay did not claim in time"
        yield claimed
    finally:
        release.set()
        holder.join(10)


def run_in_thread(worker) -> threading.Thread:
    """Start `worker.run()` (a relay or a consumer) in a thread that closes its connections at the end."""
    from django.db import connections

    def run() -> None:
        try:
            worker.run()
        finally:
            connections.close_all()

    runner = threading.Thread(target=run)
    runner.start()
    return runner


def stop_processes(processes, *, timeout: float = 15.0) -> None:
    """SIGTERM every process still running, then wait for each; one that outlives `timeout` is killed."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def publish_confirmed(topology, *bodies: bytes, routing_key: str = "message.created") -> None:
    """Publish raw `bodies` to `topology`'s events exchange, each confirmed by the broker.

    Confirmed: publishes still in flight when a connection closes may never reach the queue.
    """
    from outbox.broker import broker_connection

    with broker_connection(transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel())
        for body in bodies:
            producer.publish(body, exchange=topology.events, routing_key=routing_key)


def partitions_of(relation: str) -> set[str]:
    """A partitioned table's or index's name with those of all its partitions (the name alone if it is not one)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT relid::regclass::text FROM pg_partition_tree(%s::regclass)", [relation])
        return {row[0] for row in cursor.fetchall()} | {relation}


def plan_of(sql: str, params) -> dict:
    """The root node of the plan PostgreSQL makes for `sql` with `params` on this test's connection."""
    import json

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        document = cursor.fetchone()[0]
    return (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]


def plan_nodes(plan: dict):
    """Every node of a plan from `plan_of`, the root first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


# SQL for a UUIDv7-like event id made now: it lands in the current time partition, as real ids do.
TIME_ORDERED_UUID_SQL = (
    "(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') "
    "|| '7' || substr(md5(random()::text), 1, 19))::uuid"
)


def migrate_to(targets: list[tuple[str, str]] | None = None) -> None:
    """Migrate the test database to `targets` (app, migration), or to the latest migrations when None."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets if targets is not None else executor.loader.graph.leaf_nodes())
