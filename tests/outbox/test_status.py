"""The operators' snapshot: backlog, workers, dead events, dead-letter queues, rates, recent errors."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from kombu import Producer

from messaging.topology import build_topology
from outbox.broker import broker_connection, declare_topology
from outbox.models import InboxEntry, OutboxEvent, WorkerHeartbeat
from outbox.status import (
    _BUCKET_COUNTS_SQL,
    RECENT_DEAD_EVENTS,
    broker_status,
    ops_snapshot,
    rates,
    recent_dead_events,
    recent_errors,
)
from tests.helpers import TIME_ORDERED_UUID_SQL, append_read_events, partitions_of, plan_nodes, plan_of, wait_until
from tooling.faults.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 24, 12, 0, 5, tzinfo=UTC)  # 5 s into a ten-second bucket


def heartbeat(worker_id: str, *, last_error: str = "", last_error_at: datetime | None = None) -> WorkerHeartbeat:
    return WorkerHeartbeat.objects.create(
        worker_id=worker_id,
        kind="relay",
        hostname="h",
        pid=1,
        started_at=timezone.now(),
        beat_at=timezone.now(),
        last_error=last_error,
        last_error_at=last_error_at,
    )


def inbox_entry(processed_at: datetime) -> InboxEntry:
    return InboxEntry.objects.create(
        consumer="notifications", event_id=uuid.uuid4(), event_type="message.read", processed_at=processed_at
    )


def test_recent_dead_events_are_the_newest_first_and_at_most_a_few():
    events = append_read_events(RECENT_DEAD_EVENTS + 2)
    now = timezone.now()
    for age, event in enumerate(reversed(events)):
        OutboxEvent.objects.filter(pk=event.pk).update(
            dead_at=now - timedelta(seconds=age), attempts=8, last_error="NOT_ROUTED"
        )

    dead = recent_dead_events()

    assert [event.id for event in dead] == [event.id for event in reversed(events)][:RECENT_DEAD_EVENTS]
    assert (dead[0].event_type, dead[0].attempts, dead[0].last_error) == ("message.read", 8, "NOT_ROUTED")
    assert dead[0].aggregate_id == events[-1].aggregate_id


def test_rates_count_published_and_consumed_events_per_bucket_in_the_window():
    old, a, b, c = append_read_events(4)
    for event, published_at in ((old, NOW - timedelta(minutes=11)), (a, NOW - timedelta(seconds=14))):
        OutboxEvent.objects.filter(pk=event.pk).update(published_at=published_at)
    OutboxEvent.objects.filter(pk__in=[b.pk, c.pk]).update(published_at=NOW - timedelta(seconds=1))
    inbox_entry(NOW - timedelta(seconds=3))
    inbox_entry(NOW - timedelta(hours=1))

    seen = rates(now=NOW)

    assert len(seen.buckets) == 60
    assert seen.buckets[-1].start == datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert seen.buckets[0].start == datetime(2026, 11, 24, 11, 50, 10, tzinfo=UTC)
    assert (seen.buckets[-1].published, seen.buckets[-1].consumed) == (2, 1)
    assert (seen.buckets[-2].published, seen.buckets[-2].consumed) == (1, 0)
    assert sum(bucket.published for bucket in seen.buckets) == 3, "the event published 11 minutes ago is out"


def test_the_rate_per_second_leaves_out_the_current_unfinished_bucket():
    published = append_read_events(7)
    OutboxEvent.objects.filter(pk__in=[e.pk for e in published[:6]]).update(published_at=NOW - timedelta(seconds=20))
    OutboxEvent.objects.filter(pk=published[6].pk).update(published_at=NOW - timedelta(seconds=1))

    assert rates(now=NOW).per_second("published") == pytest.approx(6 / 60)


def test_recent_errors_merge_worker_and_event_errors_newest_first():
    now = timezone.now()
    heartbeat("relay-a", last_error="BrokerUnavailable: connection refused", last_error_at=now - timedelta(minutes=2))
    heartbeat("relay-b", last_error="DatabaseUnavailable: gone", last_error_at=now - timedelta(hours=2))
    heartbeat("relay-c")
    retrying, dead, published = append_read_events(3)
    OutboxEvent.objects.filter(pk=retrying.pk).update(
        last_error="NOT_ROUTED", last_attempt_at=now - timedelta(minutes=1), attempts=1
    )
    died = now - timedelta(minutes=3)
    OutboxEvent.objects.filter(pk=dead.pk).update(last_error="refused", last_attempt_at=died, dead_at=died)
    OutboxEvent.objects.filter(pk=published.pk).update(published_at=now, last_attempt_at=now)

    errors = recent_errors(now=now)

    assert [(error.error, error.event_id) for error in errors] == [
        ("NOT_ROUTED", retrying.id),
        ("BrokerUnavailable: connection refused", None),
        ("refused", dead.id),
    ]
    assert errors[0].source == f"event {retrying.id} message.read message:{retrying.aggregate_id} (retrying)"
    assert errors[1].source == "relay relay-a"
    assert errors[2].source.endswith("(dead)")


def test_dead_events_and_their_recent_errors_show_the_trace_id_of_the_append_when_there_is_one(capsys):
    [untraced] = append_read_events(1)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    [traced] = append_read_events(1, headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    OutboxEvent.objects.filter(pk__in=[traced.pk, untraced.pk]).update(
        dead_at=timezone.now(), last_attempt_at=timezone.now(), attempts=8, last_error="NOT_ROUTED"
    )

    assert {event.id: event.trace_id for event in recent_dead_events()} == {traced.id: trace_id, untraced.id: ""}
    assert {error.event_id: error.trace_id for error in recent_errors()} == {traced.id: trace_id, untraced.id: ""}
    call_command("outbox_status")
    assert f"trace={trace_id}" in capsys.readouterr().out


def test_dead_letter_queue_depth_is_read_from_the_broker(topology, broker_channel):
    dead_letter_queue = topology.dead_letter_queue_for("notifications")
    producer = Producer(broker_channel, exchange=topology.dead_letter_exchange)
    for _ in range(2):
        producer.publish(b"{}", routing_key=dead_letter_queue.routing_key)

    def depth():
        status = broker_status()
        return status.reachable and status.dead_letter_queues[0].depth == 2 and status

    status = wait_until(depth, what="the dead-letter queue to hold 2 messages")
    assert status.dead_letter_queues[0].queue == dead_letter_queue.name
    assert status.dead_letter_queues[0].consumer == "notifications"
    assert "guest:guest" not in status.url, "the password is masked"


def test_a_dead_letter_queue_not_declared_yet_is_reported_as_such(broker_namespace):
    status = broker_status()

    assert status.reachable
    assert status.dead_letter_queues[0].depth is None
    assert "not declared yet" in status.dead_letter_queues[0].error


def test_on_the_filesystem_broker_a_dead_letter_queues_depth_is_its_message_files(filesystem_broker):
    topology = build_topology()
    with broker_connection() as conn:
        channel = conn.channel()
        declare_topology(channel, topology)
        producer = Producer(channel, exchange=topology.dead_letter_exchange)
        for _ in range(2):
            producer.publish(b"{}", routing_key=topology.dead_letter_queue_for("notifications").routing_key)

    status = broker_status()

    assert status.reachable
    assert status.url == f"filesystem:// (folder {filesystem_broker['data_folder_in']})"
    assert [(q.queue, q.depth) for q in status.dead_letter_queues] == [
        (topology.dead_letter_queue_for("notifications").name, 2)
    ]


def test_on_the_filesystem_broker_a_dead_letter_queue_not_declared_yet_is_reported_as_such(filesystem_broker):
    # kombu's own transport finds any queue name, so this said "0 messages" for a queue no
    # process had declared.
    status = broker_status()

    assert status.reachable
    assert status.dead_letter_queues[0].depth is None
    assert "not declared yet" in status.dead_letter_queues[0].error


def test_on_the_filesystem_broker_a_missing_folder_is_reported_unreachable(filesystem_broker):
    shutil.rmtree(filesystem_broker["data_folder_in"])

    status = broker_status()

    assert not status.reachable
    assert status.error.startswith("ConnectionError: the broker folder")
    assert status.dead_letter_queues == []


def test_an_unreachable_broker_is_reported_and_the_rest_of_the_snapshot_still_read(settings):
    append_read_events(1)
    closed_port = TcpProxy._free_port()
    settings.BROKER_URL = f"amqp://guest:guest@127.0.0.1:{closed_port}//"

    snapshot = ops_snapshot()

    assert not snapshot.broker.reachable
    assert "refused" in snapshot.broker.error.lower()
    assert snapshot.broker.dead_letter_queues == []
    assert snapshot.backlog.pending == 1


def test_the_snapshot_is_plain_json(broker_namespace):
    heartbeat("relay-a", last_error="RuntimeError: boom", last_error_at=timezone.now())
    event = append_read_events(1)[0]
    OutboxEvent.objects.filter(pk=event.pk).update(dead_at=timezone.now(), last_error="NOT_ROUTED")

    data = json.loads(json.dumps(ops_snapshot().as_dict()))

    assert set(data) == {
        "taken_at",
        "backlog",
        "workers",
        "dead_events",
        "broker",
        "rates",
        "recent_errors",
        "partitions",
    }
    assert data["backlog"] == {"pending": 0, "oldest_pending_age_seconds": 0.0, "dead": 1}
    assert data["dead_events"][0]["id"] == event.id
    assert data["workers"][0]["last_error"] == "RuntimeError: boom"
    assert {"published_per_second", "consumed_per_second", "bucket_seconds", "buckets"} <= set(data["rates"])
    assert datetime.fromisoformat(data["taken_at"])


def test_counting_recent_publishes_reads_the_brin_index_not_every_published_row():
    table = OutboxEvent._meta.db_table
    with connection.cursor() as cursor:
        # A day of old published events, then the statistics a busy table would have.
        cursor.execute(
            f"INSERT INTO {table} (event_id, aggregate_type, aggregate_id, event_type, schema_version, payload, "
            "headers, occurred_at, published_at, attempts, last_error) "
            f"SELECT {TIME_ORDERED_UUID_SQL}, 'message', g::text, 'message.read', 1, '{{}}', '{{}}', "
            "now() - interval '1 day', now() - interval '1 day' + g * interval '1 second', 1, '' "
            "FROM generate_series(1, 50000) g"
        )
        cursor.execute(f"ANALYZE {table}")
        sql = _BUCKET_COUNTS_SQL.format(table=table, column="published_at")
        cursor.execute(f"SELECT DISTINCT tableoid::regclass::text FROM {table}")
        [busy] = [row[0] for row in cursor.fetchall()]
    plan = plan_of(sql, {"size": 10, "since": timezone.now() - timedelta(minutes=10)})

    # The partition holding the day is read through its BRIN index; the empty ones may be scanned.
    scans = [node for node in plan_nodes(plan) if node.get("Relation Name") == busy]
    assert scans
    assert {scan["Node Type"] for scan in scans} == {"Bitmap Heap Scan"}
    assert {scan["Plans"][0]["Index Name"] for scan in scans} <= partitions_of("outbox_published_at_brin")
