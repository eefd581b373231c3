"""The pipeline benchmark behind `manage.py outbox_bench`: every figure of one run, and its ratios.

It runs against the configured PostgreSQL and RabbitMQ on a private broker namespace, with its
own users, and removes what it wrote when it is done (messages, their events and inbox rows,
the filler rows, the namespace's exchanges and queues).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, connections

from messaging.events import NOTIFICATION_AGGREGATE
from messaging.models import Message, Notification
from messaging.signals import created_event_guard_ignored_by_this_session, message_event_receivers_disconnected
from messaging.topology import NOTIFICATION_EVENTS_CONSUMER, NOTIFICATIONS_CONSUMER, build_topology
from outbox.broker import broker_connection, declare_topology, delete_topology, require_amqp
from outbox.models import InboxEntry, OutboxEvent
from outbox.retention import delete_published_events_of
from tooling.benchmarks import raw
from tooling.faults.supervisor import Supervisor, current_database_url

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
FILLER_TYPE = "bench.filler"


@dataclass(frozen=True)
class BenchConfig:
    backlog: int = 100_000
    # Five rounds of 3,000: with three of 2,000, back-to-back runs gave 1.25x and 1.55x (4 writers).
    write_messages: int = 3000
    write_rounds: int = 5
    writers: int = 4
    # Our relay and consumer, then the raw loops, alternated this many times (see measure_against_limits).
    limit_rounds: int = 2
    rates: tuple[int, ...] = (200, 1000)
    # 20 s: the p99 at 200/s is the 40th worst of 4,000, which a single stall of the machine cannot
    # decide as it can the 10th worst of 1,000 (docs/performance.md, "Run-to-run spread").
    latency_seconds: float = 20.0
    # Windows per rate; each percentile is their median: one window's p99 can be a stall's, so one
    # window against another cannot show a change of 15% (docs/performance.md).
    latency_windows: int = 3
    old_rows: int = 1_000_000
    # --partitions: the daily partitions the old rows are spread over.
    old_days: int = 4
    batch_size: int = 500
    prefetch: int = 500
    # --partitioned-consumers: the partition queues the consumer processes share.
    consumer_partitions: int = 4
    # The stages of the main run to measure (STAGES); empty: all of them.
    only: tuple[str, ...] = ()


@dataclass
class BenchResult:
    figures: dict[str, float] = field(default_factory=dict)

    def set(self, name: str, value: float) -> None:
        self.figures[name] = round(value, 3)


def time_ordered_uuid_sql(moment_sql: str, noise_sql: str = "random()::text") -> str:
    """SQL for a UUIDv7 made at `moment_sql`: its milliseconds, the version digit, random bits."""
    return (
        f"(lpad(to_hex((extract(epoch FROM {moment_sql}) * 1000)::bigint), 12, '0') "
        f"|| '7' || substr(md5({noise_sql}), 1, 19))::uuid"
    )


def manage_py(*arguments: str) -> list[str]:
    """The command line of `manage.py <arguments>` run by this interpreter."""
    return [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *arguments]


class BenchRefused(Exception):
    """The database cannot hold this run as it is: the message says why and what to do."""


# The main run's stages, in the order they run; `outbox_bench --only` picks some.
STAGES = ("write", "limits", "relays", "sink", "latency", "old-rows")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class LatencyWindow:
    """One latency window's figures per message (ms): commit to notification, and its two legs."""

    total: list[float] = field(default_factory=list)
    relay: list[float] = field(default_factory=list)
    consumer: list[float] = field(default_factory=list)


class PipelineBench:
    """One benchmark run; `run()` fills and returns the result."""

    def __init__(self, config: BenchConfig, *, progress: Progress | None = None) -> None:
        # It measures RabbitMQ with confirms against raw py-amqp loops.
        require_amqp("outbox_bench")
        self.config = config
        self.progress = progress or (lambda phase, done, total: None)
        self.namespace = f"bench-{uuid.uuid4().hex[:8]}."
        self.topology = build_topology(self.namespace)
        self.result = BenchResult()
        self.log_dir = Path(tempfile.mkdtemp(prefix="outbox-bench-"))
        self.env = {
            **os.environ,
            "DATABASE_URL": current_database_url(),
            "BROKER_NAMESPACE": self.namespace,
            "RELAY_BATCH_SIZE": str(config.batch_size),
            "CONSUMER_PREFETCH": str(config.prefetch),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            # Measured as deployed (see run()); DEBUG off needs a key, and this one signs nothing.
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
        }
        self._users: list = []

    # --- the run --------------------------------------------------------------------------

    def run(self) -> BenchResult:
        # As deployed, DEBUG off: with it on, Django records every query it runs, a cost on the bare
        # write as well that makes the write path's ratio look better than it is when deployed.
        debug, settings.DEBUG = settings.DEBUG, False
        try:
            return self._run()
        finally:
            settings.DEBUG = debug

    def _run(self) -> BenchResult:
        with broker_connection() as conn:
            declare_topology(conn.channel(), self.topology)
        user_model = get_user_model()
        self._users = [user_model.objects.create(username=f"{self.namespace}{name}") for name in ("a", "b")]
        try:
            self.measure()
        finally:
            self.clean_up()
        return self.result

    def measure(self) -> None:
        """Every phase of the run (or those of `--only`), in order, filling `self.result`."""
        wanted = set(self.config.only or STAGES)
        if "write" in wanted:
            self.measure_write_path()
        if "limits" in wanted:
            self.measure_against_limits()
        if "relays" in wanted:
            self.measure_relay_and_consumer(relays=2, prefix="")
        if "sink" in wanted:
            self.measure_sink_consumer()
        if "latency" in wanted:
            self.measure_latency(prefix="")
        if self.config.old_rows and "old-rows" in wanted:
            self.add_old_rows()
            # As many drains as the empty table's figure has (measure_against_limits): with
            # one each way, one run read a change of -18% between runs of -4% and +7%.
            self.measure_relay_and_consumer(relays=1, prefix="old_rows.", rounds=self.config.limit_rounds)
            self.measure_latency(prefix="old_rows.", rates=self.config.rates[:1])
        self.compute_ratios()

    # --- 1. the write path ----------------------------------------------------------------

    def measure_write_path(self) -> None:
        n = self.config.write_messages
        # Concurrent writers twice: as threads of this process, and as processes (as gunicorn's
        # workers write). Threads share one interpreter lock, so with them the figure follows the
        # Python each write costs; with processes it follows the whole machine's work per write.
        runs = [("1_writers", 1, "threads"), (f"{self.config.writers}_writers", self.config.writers, "threads")]
        runs.append((f"{self.config.writers}_processes", self.config.writers, "processes"))
        for name, writers, parallel in runs:
            # Rounds alternate with and without the outbox, and each figure is the median of its
            # rounds: one pair of short runs swung between 1.36x and 1.7x on a VM whose disk
            # flushes vary, and a drift in between would land on one side only.
            rounds = [
                (
                    self._write_rate(n, writers, parallel, events=True),
                    self._write_rate(n, writers, parallel, events=False),
                )
                for _ in range(self.config.write_rounds)
            ]
            self.result.set(f"write.{name}.with_outbox_per_s", statistics.median(w for w, _ in rounds))
            self.result.set(f"write.{name}.without_outbox_per_s", statistics.median(wo for _, wo in rounds))
            self.result.set(f"write.{name}.cost_ratio", statistics.median(wo / w for w, wo in rounds))
        self._discard_pending_bench_events()

    def _write_rate(self, n: int, writers: int, parallel: str, *, events: bool) -> float:
        sender, receiver = self._users
        per_writer = n // writers

        def write_messages() -> None:
            # The bare write: its events' receivers off, the guard told once per session that
            # these messages have none (so the baseline carries no per-statement ignoring).
            guard = contextlib.nullcontext() if events else created_event_guard_ignored_by_this_session()
            with guard:
                for _ in range(per_writer):
                    Message.objects.create(sender=sender, receiver=receiver, content="benchmark message")

        receivers_off = message_event_receivers_disconnected() if not events else contextlib.nullcontext()
        with receivers_off:
            run = self._run_in_threads if parallel == "threads" else self._run_in_processes
            elapsed = run(write_messages, writers)
        self.progress(f"write path ({writers} {parallel})", 1, 1)
        return per_writer * writers / elapsed

    @staticmethod
    def _run_in_threads(work: Callable[[], None], count: int) -> float:
        def run() -> None:
            try:
                work()
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run) for _ in range(count)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    @staticmethod
    def _run_in_processes(work: Callable[[], None], count: int) -> float:
        context = multiprocessing.get_context("fork")
        ready = context.Barrier(count + 1)

        def run() -> None:
            try:
                ready.wait(timeout=60)
                work()
            finally:
                connections.close_all()

        # A forked child must open its own connection, never share this process's socket.
        connections.close_all()
        processes = [context.Process(target=run) for _ in range(count)]
        for process in processes:
            process.start()
        ready.wait(timeout=60)  # the clock starts once every child is forked and set up
        started = time.perf_counter()
        for process in processes:
            process.join()
        elapsed = time.perf_counter() - started
        if failed := [process.exitcode for process in processes if process.exitcode != 0]:
            raise RuntimeError(f"write-path writer processes failed with exit codes {failed}")
        return elapsed

    # --- 2 and 3. relay and consumer throughput -------------------------------------------

    def measure_against_limits(self) -> None:
        """Relay and consumer throughput, and each against its raw loop, in alternating rounds.

        Measured phases apart, a drift of the machine's speed would land on one side of the ratio:
        the raw loops would run minutes after ours. Each round drains the same size of backlog from
        a vacuumed table with ours, then with the raw loops; figures and ratios are medians.
        """
        rounds = []
        for _ in range(self.config.limit_rounds):
            relay, consumer = self._relay_and_consumer_rates(relays=1)
            raw_relay, raw_consumer = self._raw_rates(raw.raw_consumer)
            rounds.append((relay, consumer, raw_relay, raw_consumer))
        for index, name in enumerate(
            ("relay.1_relays", "consumer", "raw.relay", "raw.consumer"),
        ):
            self.result.set(f"{name}.events_per_s", statistics.median(r[index] for r in rounds))
        self.result.set("relay_vs_limit", round(statistics.median(r[0] / r[2] for r in rounds), 3))
        self.result.set("consumer_vs_limit", round(statistics.median(r[1] / r[3] for r in rounds), 3))

    def measure_relay_and_consumer(self, *, relays: int, prefix: str, rounds: int = 1) -> None:
        """Events/s of `relays` relays (and of our consumer, with one relay); medians of `rounds` drains."""
        results = [self._relay_and_consumer_rates(relays=relays) for _ in range(rounds)]
        self.result.set(f"{prefix}relay.{relays}_relays.events_per_s", statistics.median(r for r, _ in results))
        if consumers := [c for _, c in results if c is not None]:
            self.result.set(f"{prefix}consumer.events_per_s", statistics.median(consumers))

    def measure_sink_consumer(self) -> None:
        _, sink = self._raw_rates(raw.raw_sink_consumer)
        self.result.set("raw.sink_consumer.events_per_s", sink)

    def _relay_and_consumer_rates(self, *, relays: int) -> tuple[float, float | None]:
        """Events/s of our relays draining a fresh backlog, and of our consumer (one relay only)."""
        self._make_backlog(self.config.backlog)
        self._settle_server()
        timings = self._run_relays_once(relays)
        published = sum(t["published"] for t in timings)
        elapsed = max(t["finished"] for t in timings) - min(t["started"] for t in timings)
        if relays != 1:
            self._purge_queue()
            return published / elapsed, None
        stats = self._drain_with_consumer()
        self._discard_notification_events()
        return published / elapsed, stats["settled"] / (stats["last_at"] - stats["first_at"])

    def _raw_rates(self, consume) -> tuple[float, float]:
        """Events/s of the raw relay draining a fresh backlog, and of `consume` taking it in."""
        self._make_backlog(self.config.backlog)
        self._settle_server()
        dsn = current_database_url()
        published, relay_seconds = raw.raw_relay(
            dsn, settings.BROKER_URL, self.topology.events.name, self.config.batch_size
        )
        queue = self.topology.queue_for(NOTIFICATIONS_CONSUMER).name
        settled, consume_seconds = consume(dsn, settings.BROKER_URL, queue, published, self.config.prefetch)
        self._discard_notification_events()
        self.progress("raw limits", 1, 1)
        return published / relay_seconds, settled / consume_seconds

    def _settle_server(self) -> None:
        """Start a measured phase from vacuumed tables and a fresh checkpoint."""
        # Each drain leaves a dead row version per event it published: by the flatness phase the
        # earlier phases have left hundreds of thousands, which autovacuum may or may not have
        # cleared by then (this machine's server runs with autovacuum off). Every relay phase
        # starts from a vacuumed table, so that it measures the rows the table holds, not the
        # order of the phases. The messages too: the consumer joins them, and rows no vacuum has
        # seen yet make their first readers set their hint bits.
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {OutboxEvent._meta.db_table}, {Message._meta.db_table}")
        # And the setting-up's writes are flushed before the clock starts, as pgbench does before
        # its runs: a backlog or the million old rows set off checkpoints, whose page writes would
        # otherwise fall into the measured phase on one side of a comparison.
        try:
            with connection.cursor() as cursor:
                cursor.execute("CHECKPOINT")
        except DatabaseError as exc:
            # Needs superuser or pg_checkpoint; without it the figures are noisier, not wrong.
            logger.warning("bench.checkpoint_refused error=%s", type(exc).__name__)

    def _make_backlog(self, n: int) -> None:
        sender, receiver = self._users
        chunk = 2000
        for done in range(0, n, chunk):
            size = min(chunk, n - done)
            Message.objects.bulk_create(
                [Message(sender=sender, receiver=receiver, content="benchmark message") for _ in range(size)]
            )
            self.progress("backlog", done + size, n)

    def _run_relays_once(self, relays: int) -> list[dict]:
        processes = [
            subprocess.Popen(  # noqa: S603 - our own manage.py
                manage_py("relay", "--once", "--json"),
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(relays)
        ]
        timings = []
        for process in processes:
            out, err = process.communicate(timeout=1800)
            if process.returncode != 0:
                raise RuntimeError(f"relay --once failed: {err.strip()[-500:]}")
            timings.append(json.loads(out.strip().splitlines()[-1]))
        self.progress(f"relay x{relays}", 1, 1)
        return timings

    def _drain_with_consumer(self) -> dict:
        finished = subprocess.run(  # noqa: S603 - our own manage.py
            manage_py("consume_notifications", "--exit-when-idle", "--json"),
            cwd=settings.BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if finished.returncode != 0:
            raise RuntimeError(f"consumer failed: {finished.stderr.strip()[-500:]}")
        self.progress("consumer", 1, 1)
        return json.loads(finished.stdout.strip().splitlines()[-1])

    def _discard_notification_events(self) -> None:
        # The consumer's appends are part of its figure; publishing them belongs to no measured phase.
        self._run_relays_once(1)
        with broker_connection() as conn:
            self.topology.queue_for(NOTIFICATION_EVENTS_CONSUMER)(conn.channel()).purge()

    def _purge_queue(self) -> None:
        with broker_connection() as conn:
            self.topology.queue_for(NOTIFICATIONS_CONSUMER)(conn.channel()).purge()

    # --- 5. the raw limit -----------------------------------------------------------------

    # --- 4. end-to-end latency ------------------------------------------------------------

    def measure_latency(self, *, prefix: str, rates: tuple[int, ...] | None = None) -> None:
        supervisor = Supervisor(self.log_dir, {**self.env, "RELAY_POLL_INTERVAL_SECONDS": "1"})
        supervisor.add("relay", ["relay"])
        supervisor.add("consumer", ["consume_notifications"])
        try:
            self._send_and_wait(rate=50, seconds=1.0)  # warm-up: both workers up and connected
            for rate in rates or self.config.rates:
                windows = []
                for done in range(self.config.latency_windows):
                    self._settle_server()
                    windows.append(self._send_and_wait(rate=rate, seconds=self.config.latency_seconds))
                    self.progress(f"latency at {rate}/s", done + 1, self.config.latency_windows)
                for share, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
                    value = statistics.median(percentile(window.total, share) for window in windows)
                    self.result.set(f"{prefix}latency.{rate}_per_s.{name}_ms", value)
                # Where the median goes: commit to the relay's mark, and from there to the notification.
                for part in ("relay", "consumer"):
                    value = statistics.median(percentile(getattr(window, part), 0.5) for window in windows)
                    self.result.set(f"{prefix}latency.{rate}_per_s.{part}_p50_ms", value)
        finally:
            supervisor.stop_all()

    def _send_and_wait(self, *, rate: int, seconds: float) -> LatencyWindow:
        sender, receiver = self._users
        sent: dict[uuid.UUID, float] = {}
        count = int(rate * seconds)
        interval = 1.0 / rate
        next_at = time.perf_counter()
        for _ in range(count):
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
            message = Message.objects.create(sender=sender, receiver=receiver, content="latency probe")
            sent[message.pk] = time.time()
        deadline = time.monotonic() + 120
        while Notification.objects.filter(message_id__in=sent).count() < len(sent):
            if time.monotonic() > deadline:
                raise RuntimeError("notifications did not arrive within 120 s")
            time.sleep(0.1)
        created = dict(Notification.objects.filter(message_id__in=sent).values_list("message_id", "created_at"))
        # The relay's mark is the statement after the broker's confirm: its time splits the path.
        published = dict(
            OutboxEvent.objects.filter(
                aggregate_type="message", aggregate_id__in=[str(pk) for pk in sent], event_type="message.created"
            ).values_list("aggregate_id", "published_at")
        )
        window = LatencyWindow()
        for message_id, sent_at in sent.items():
            notified_at = created[message_id].timestamp()
            published_at = published[str(message_id)].timestamp()
            window.total.append((notified_at - sent_at) * 1000)
            window.relay.append((published_at - sent_at) * 1000)
            window.consumer.append((notified_at - published_at) * 1000)
        return window

    # --- 6. flatness ----------------------------------------------------------------------

    def add_old_rows(self) -> None:
        table = OutboxEvent._meta.db_table
        chunk = 100_000
        for done in range(0, self.config.old_rows, chunk):
            size = min(chunk, self.config.old_rows - done)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} (event_id, aggregate_type, aggregate_id, event_type, schema_version, "
                    "payload, headers, occurred_at, published_at, attempts, last_error) "
                    f"SELECT {time_ordered_uuid_sql('clock_timestamp()', 'g::text || random()::text')}, %s, g::text, "
                    "%s, 1, '{}'::jsonb, '{}'::jsonb, now(), now(), 1, '' "
                    "FROM generate_series(1, %s) AS g",
                    [FILLER_TYPE, FILLER_TYPE, size],
                )
            self.progress("old rows", done + size, self.config.old_rows)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")

    # --- results and clean-up ---------------------------------------------------------------

    def compute_ratios(self) -> None:
        f = self.result.figures
        if "consumer.events_per_s" in f and "raw.sink_consumer.events_per_s" in f:
            f["consumer_vs_sink"] = round(f["consumer.events_per_s"] / f["raw.sink_consumer.events_per_s"], 3)
        rate = self.config.rates[0]
        changes = {
            "old_rows.relay_change": "relay.1_relays.events_per_s",
            "old_rows.p99_change": f"latency.{rate}_per_s.p99_ms",
        }
        for name, figure in changes.items():
            if figure in f and f"old_rows.{figure}" in f:
                f[name] = round(f[f"old_rows.{figure}"] / f[figure] - 1, 3)

    def _discard_pending_bench_events(self) -> None:
        # The write-path events are not part of any later measurement: publish them away.
        self._run_relays_once(1)
        self._purge_queue()

    def clean_up(self) -> None:
        sender, _ = self._users or (None, None)
        if sender is not None:
            self._run_relays_once(1)  # nothing of ours may stay pending: pending rows cannot be deleted
            message_ids = [str(pk) for pk in Message.objects.filter(sender=sender).values_list("pk", flat=True)]
            for start in range(0, len(message_ids), 5000):
                InboxEntry.objects.filter(subject__in=message_ids[start : start + 5000]).delete()
            delete_published_events_of("message", message_ids)
            notification_ids = [
                str(pk) for pk in Notification.objects.filter(message__sender=sender).values_list("pk", flat=True)
            ]
            delete_published_events_of(NOTIFICATION_AGGREGATE, notification_ids)
            Message.objects.filter(sender=sender).delete()
            get_user_model().objects.filter(pk__in=[user.pk for user in self._users]).delete()
        delete_published_events_of(FILLER_TYPE)
        with broker_connection() as conn:
            delete_topology(conn.channel(), self.topology)
