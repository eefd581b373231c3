"""A small run of the benchmark: it runs end to end and reports sane figures (not that it is fast)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from messaging.models import Message
from outbox.models import OutboxEvent
from outbox.partitions import PARTITIONED_TABLES, create_partition, day_start, list_partitions, uuid_floor
from tooling.benchmarks.pipeline import BenchConfig, PipelineBench

pytestmark = pytest.mark.django_db(transaction=True)

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)

EXPECTED = [
    "write.1_writers.with_outbox_per_s",
    "write.1_writers.without_outbox_per_s",
    "write.1_writers.cost_ratio",
    "write.2_writers.cost_ratio",
    "write.2_processes.cost_ratio",
    "relay.1_relays.events_per_s",
    "relay.2_relays.events_per_s",
    "consumer.events_per_s",
    "raw.relay.events_per_s",
    "raw.consumer.events_per_s",
    "raw.sink_consumer.events_per_s",
    "latency.50_per_s.p50_ms",
    "latency.50_per_s.p99_ms",
    "old_rows.relay.1_relays.events_per_s",
    "old_rows.latency.50_per_s.p99_ms",
    "relay_vs_limit",
    "consumer_vs_limit",
    "old_rows.relay_change",
    "old_rows.p99_change",
]


def test_a_small_benchmark_run_reports_every_figure_and_cleans_up():
    config = BenchConfig(
        backlog=300, write_messages=40, writers=2, rates=(50,), latency_seconds=1, old_rows=2000, batch_size=100
    )

    figures = PipelineBench(config).run().figures

    missing = [name for name in EXPECTED if name not in figures]
    assert not missing
    for name in EXPECTED:
        if name.endswith("_change"):
            assert -1 < figures[name] < 100, (name, figures[name])
        else:
            assert figures[name] > 0, (name, figures[name])
    assert figures["latency.50_per_s.p50_ms"] <= figures["latency.50_per_s.p99_ms"]
    assert figures["latency.50_per_s.p99_ms"] < 1000
    assert not Message.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_small_publish_path_comparison_reports_both_variants_and_cleans_up():
    out = StringIO()

    call_command(
        "outbox_bench", "--publish-paths", "--backlog=200", "--limit-rounds=2", "--batch-size=50", "--json", stdout=out
    )

    figures = json.loads(out.getvalue())
    for phase in ("publish", "relay"):
        for variant in ("frames", "basic_publish"):
            for figure in ("median", "min", "max"):
                assert figures[f"{phase}.{variant}.events_per_s.{figure}"] > 0
        gain = figures[f"{phase}.frames_vs_basic_publish.median"]
        assert (
            figures[f"{phase}.frames_vs_basic_publish.min"] <= gain <= figures[f"{phase}.frames_vs_basic_publish.max"]
        )
    assert figures["publish.basic_publish.cpu_us_per_event.median"] > 0
    assert not Message.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_small_partitions_run_reports_relay_latency_and_retention_figures_and_cleans_up():
    out = StringIO()
    try:
        call_command(
            "outbox_bench",
            "--partitions",
            "--backlog=200",
            "--old-rows=2000",
            "--old-days=2",
            "--rates=50",
            "--latency-seconds=1",
            "--latency-windows=1",
            "--limit-rounds=1",
            "--batch-size=50",
            "--json",
            stdout=out,
        )
    finally:
        # The run drops a day's partition of each table: the days stay covered for later tests.
        for table in PARTITIONED_TABLES:
            create_partition(table, day_start(YESTERDAY), day_start(YESTERDAY + timedelta(days=1)))

    figures = json.loads(out.getvalue())
    for name in ("empty", "old_rows"):
        assert figures[f"{name}.relay.1_relays.events_per_s"] > 0
        assert 0 < figures[f"{name}.latency.50_per_s.p99_ms"] < 1000
    assert figures["retention.rows_per_day"] == 1000
    assert figures["retention.prune_rows.seconds"] > 0
    assert figures["retention.drop_partition.seconds"] > 0
    assert not Message.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_partitions_run_on_a_database_with_events_in_its_days_is_refused_and_changes_nothing():
    # An event five days old in the first ("legacy") partition, which the run would cut short before it.
    old_event_id = uuid_floor(day_start(datetime.now(UTC).date() - timedelta(days=5)))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {OutboxEvent._meta.db_table} (event_id, aggregate_type, aggregate_id, event_type, "
            "schema_version, payload, headers, occurred_at, attempts, last_error) "
            "VALUES (%s, 'message', 'old', 'message.read', 1, '{}', '{}', now(), 0, '')",
            [old_event_id],
        )
    before = {table: list_partitions(table) for table in PARTITIONED_TABLES}

    with pytest.raises(CommandError, match="freshly migrated database"):
        call_command("outbox_bench", "--partitions", "--old-rows=100", "--old-days=30", stdout=StringIO())

    assert {table: list_partitions(table) for table in PARTITIONED_TABLES} == before
    assert OutboxEvent.objects.filter(event_id=old_event_id).exists()


def test_a_small_partitioned_consumers_run_reports_both_rates_and_the_handover_and_cleans_up():
    out = StringIO()

    call_command(
        "outbox_bench",
        "--partitioned-consumers",
        "--backlog=400",
        "--consumer-partitions=2",
        "--limit-rounds=1",
        "--json",
        stdout=out,
    )

    figures = json.loads(out.getvalue())
    for count in (1, 2):
        assert figures[f"partitioned.{count}_consumers.events_per_s"] > 0
    assert figures["partitioned.2_vs_1_consumers"] > 0
    # At the default CONSUMER_REBALANCE_SECONDS (1 s) the survivor takes over within a few seconds.
    assert 0 < figures["partitioned.handover_seconds"] < 10
    assert figures["partitioned.partitions"] == 2
    assert not Message.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_partitioned_consumers_need_two_partitions_for_two_processes():
    with pytest.raises(CommandError, match="--consumer-partitions must be at least 2"):
        call_command("outbox_bench", "--partitioned-consumers", "--consumer-partitions=1")
