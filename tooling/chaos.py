"""The mixed-fault scenario: write messages while relays and consumers are killed, cut off and
starved of their database, then check that every message has exactly one notification.

Used by the fault suite (small plans) and by `manage.py outbox_chaos` (20,000 messages). It runs
on a private broker namespace, so it never touches the production queues, and deletes it after.
With `partitions` above 1 the consumers share that many partition queues (CONSUMER_PARTITIONS),
and the run watches their leases to show the partitions were spread and handed over.
"""

from __future__ import annotations

import random
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.db.models import Count, Q

from messaging.models import Message, Notification
from messaging.topology import NOTIFICATIONS_CONSUMER, build_topology
from outbox.broker import ROLE_URL_SETTINGS, broker_connection, declare_topology, delete_topology, require_amqp
from outbox.models import InboxEntry, OutboxEvent
from outbox.partition_leases import lease_holders
from tooling.faults.supervisor import Supervisor, current_database_url
from tooling.faults.tcp_proxy import TcpProxy

Progress = Callable[[str, int, int], None]
WORKER_APPLICATION_NAME = "outbox-chaos-worker"
# How often the fault loop reads who holds which partition.
LEASE_SAMPLE_SECONDS = 0.1
# Once the faults stop and the workers have settled the run, how long the consumer processes have
# to share the partitions (a few of their CONSUMER_REBALANCE_SECONDS).
SPREAD_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class ChaosPlan:
    messages: int = 1000
    relays: int = 2
    consumers: int = 2
    # The notifications consumer's partition queues (CONSUMER_PARTITIONS of every worker).
    partitions: int = 1
    writers: int = 4
    users: int = 20
    # Share of messages their receiver reads right away (a message.read event each).
    read_share: float = 0.3
    # SIGKILL a random worker (among those named by kill_targets) this often; None: never.
    kill_every: float | None = 2.0
    kill_targets: tuple[str, ...] = ("relay", "consumer")
    # Messages per second over all writers; None: as fast as they go. Sets how long faults last.
    write_rate: float | None = None
    # Cut every worker's broker connection (through a proxy) this often; None: never.
    cut_broker_every: float | None = None
    # pg_terminate_backend every worker session this often; None: never.
    terminate_db_every: float | None = None
    # Failpoints (outbox/failpoints.py) the workers run with while faults are on.
    failpoints: str = "relay.after_confirm=0.02,consumer.after_commit=0.02"
    # How long the system may take to settle once writing and faults stop.
    settle_timeout: float = 300.0
    seed: int | None = None


@dataclass
class ChaosReport:
    messages_written: int = 0
    read_marked: int = 0
    events: int = 0
    published: int = 0
    # Published while writers and faults were still running, before the settling phase.
    published_under_faults: int = 0
    pending: int = 0
    dead: int = 0
    notifications: int = 0
    lost: int = 0
    doubled: int = 0
    read_not_synced: int = 0
    out_of_order: int = 0
    duplicates_absorbed: int = 0
    dead_lettered: int = 0
    kills: int = 0
    consumer_kills: int = 0
    worker_deaths: int = 0
    broker_cuts: int = 0
    db_terminations: int = 0
    partitions: int = 1
    # The most consumer processes seen holding partition leases at one moment while faults ran:
    # between faults a second or two apart they may not get to share, so this can be 1.
    partition_holders_max: int = 0
    # The same once the faults stopped and the run settled, watched until every consumer process
    # (up to one per partition) holds some, or SPREAD_TIMEOUT_SECONDS.
    partition_holders_settled: int = 0
    # `consumer.partition_taken` lines in the workers' logs: first takes and hand-overs.
    partitions_taken: int = 0
    seconds: float = 0.0
    worker_logs: Path | None = None
    exit_codes: dict[str, int | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.pending or self.read_not_synced or self.out_of_order)

    @property
    def failpoint_deaths(self) -> int:
        return self.worker_deaths - self.kills

    def lines(self) -> list[str]:
        partitions = (
            [
                f"partitions            {self.partitions}: at most {self.partition_holders_max} consumer processes "
                f"held some at once under faults, {self.partition_holders_settled} after them, "
                f"{self.partitions_taken} taken over the run"
            ]
            if self.partitions > 1
            else []
        )
        return [
            f"messages written      {self.messages_written}",
            f"  of which read       {self.read_marked}",
            f"events                {self.events}",
            f"published             {self.published} ({self.published_under_faults} while faults ran)",
            f"pending               {self.pending}",
            f"dead                  {self.dead}",
            f"notifications         {self.notifications}",
            f"duplicates absorbed   {self.duplicates_absorbed}",
            f"dead-lettered         {self.dead_lettered}",
            f"lost                  {self.lost}",
            f"doubled               {self.doubled}",
            f"read not synced       {self.read_not_synced}",
            f"out of order          {self.out_of_order}",
            f"faults                {self.kills} kills, {self.failpoint_deaths} deaths at failpoints, "
            f"{self.broker_cuts} broker cuts, {self.db_terminations} database terminations "
            f"({self.consumer_kills} of the kills were consumers)",
            *partitions,
            f"time taken            {self.seconds:.1f}s",
            f"verdict               {'OK' if self.ok else 'FAILED'}",
        ]


class ChaosRun:
    """One run of the scenario; `run()` returns the report."""

    def __init__(self, plan: ChaosPlan, *, progress: Progress | None = None, log_dir: Path | None = None) -> None:
        # Its faults (broker cuts, kills between confirm and commit) exist only on RabbitMQ.
        require_amqp("outbox_chaos")
        self.plan = plan
        self.progress = progress or (lambda phase, done, total: None)
        self.rng = random.Random(plan.seed)
        self.namespace = f"chaos-{uuid.uuid4().hex[:8]}."
        self.topology = build_topology(self.namespace, partitions=plan.partitions)
        # The consumers' partition leases are keyed by their queue's name (outbox.partition_leases).
        self.lease_group = self.topology.queue_for(NOTIFICATIONS_CONSUMER).name
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="outbox-chaos-"))
        self.report = ChaosReport(worker_logs=self.log_dir, partitions=plan.partitions)
        self._faults_on = threading.Event()
        self._written: list[uuid.UUID] = []
        self._read: list[uuid.UUID] = []
        self._lock = threading.Lock()

    # --- the scenario -----------------------------------------------------------------------

    def run(self) -> ChaosReport:
        started = time.monotonic()
        topology = self.topology
        with broker_connection() as conn:
            declare_topology(conn.channel(), topology)
        proxy = TcpProxy(urlsplit(settings.BROKER_URL).port or 5672).start() if self.plan.cut_broker_every else None
        supervisor = Supervisor(self.log_dir, self._worker_env(proxy))
        try:
            for i in range(self.plan.relays):
                supervisor.add(f"relay-{i}", ["relay"], {"OUTBOX_FAILPOINTS": self.plan.failpoints})
            for i in range(self.plan.consumers):
                supervisor.add(f"consumer-{i}", ["consume_notifications"], {"OUTBOX_FAILPOINTS": self.plan.failpoints})
            users = self._make_users()
            self._faults_on.set()
            faults = threading.Thread(target=self._inject_faults, args=(supervisor, proxy), daemon=True)
            faults.start()
            self._write(users)
            self._faults_on.clear()
            faults.join()
            self.report.published_under_faults = self._events().filter(published_at__isnull=False).count()
            # Settle: one last kill of everyone, then every worker back without failpoints.
            supervisor.kill_all()
            supervisor.restart_dead({"OUTBOX_FAILPOINTS": ""})
            self._settle()
            if self.plan.partitions > 1:
                self._watch_partitions_spread()
        finally:
            self.report.exit_codes = supervisor.stop_all()
            if proxy is not None:
                proxy.cut()
            self._measure(topology, supervisor)
            with broker_connection() as conn:
                delete_topology(conn.channel(), topology)
            connections.close_all()
        self.report.seconds = time.monotonic() - started
        return self.report

    def _worker_env(self, proxy: TcpProxy | None) -> dict[str, str]:
        import os

        env = dict(os.environ)
        env.update(
            DATABASE_URL=current_database_url(),
            BROKER_NAMESPACE=self.namespace,
            RELAY_POLL_INTERVAL_SECONDS="1",
            RELAY_MAX_BACKOFF_SECONDS="1",
            CONSUMER_MAX_BACKOFF_SECONDS="1",
            # The relays declare the topology too: every worker gets the same count.
            CONSUMER_PARTITIONS=str(self.plan.partitions),
            # Partitions of a killed consumer move within half a second of its session's end.
            CONSUMER_REBALANCE_SECONDS="0.5",
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="INFO",
            # libpq names the workers' sessions, so that only theirs are terminated.
            PGAPPNAME=WORKER_APPLICATION_NAME,
        )
        if proxy is not None:
            env["BROKER_URL"] = proxy.url_for(settings.BROKER_URL)
            # Every role's own user goes through the proxy too, or a cut would miss it.
            for name in ROLE_URL_SETTINGS:
                if env.get(name):
                    env[name] = proxy.url_for(env[name])
        return env

    def _make_users(self) -> list:
        user_model = get_user_model()
        run = self.namespace.rstrip(".")
        return [user_model.objects.create(username=f"{run}-user{i}") for i in range(self.plan.users)]

    def _write(self, users: list) -> None:
        counts = [self.plan.messages // self.plan.writers] * self.plan.writers
        counts[0] += self.plan.messages - sum(counts)
        threads = [
            threading.Thread(target=self._writer, args=(users, count, random.Random(self.rng.random())))
            for count in counts
        ]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            self.progress("writing", len(self._written), self.plan.messages)
            time.sleep(0.2)
        for thread in threads:
            thread.join()
        self.progress("writing", len(self._written), self.plan.messages)

    def _writer(self, users: list, count: int, rng: random.Random) -> None:
        interval = self.plan.writers / self.plan.write_rate if self.plan.write_rate else 0.0
        next_at = time.monotonic()
        try:
            for _ in range(count):
                if interval:
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.monotonic()))
                sender, receiver = rng.sample(users, 2)
                message = Message.objects.create(sender=sender, receiver=receiver, content=f"chaos {rng.random()}")
                read = rng.random() < self.plan.read_share
                if read:
                    message.is_read = True
                    message.save(update_fields=["is_read"])
                with self._lock:
                    self._written.append(message.pk)
                    if read:
                        self._read.append(message.pk)
        finally:
            connections.close_all()

    def _inject_faults(self, supervisor: Supervisor, proxy: TcpProxy | None) -> None:
        schedule = {
            "kill": self.plan.kill_every,
            "cut": self.plan.cut_broker_every if proxy else None,
            "terminate": self.plan.terminate_db_every,
        }
        if self.plan.partitions > 1:
            schedule["leases"] = LEASE_SAMPLE_SECONDS
        due = {name: time.monotonic() + every for name, every in schedule.items() if every}
        try:
            while self._faults_on.is_set():
                supervisor.restart_dead()
                now = time.monotonic()
                for name, at in list(due.items()):
                    if now < at:
                        continue
                    due[name] = now + schedule[name]
                    if name == "kill":
                        victim = supervisor.kill_one(self.rng, self.plan.kill_targets)
                        self.report.consumer_kills += bool(victim and victim.name.startswith("consumer"))
                    elif name == "leases":
                        holders = lease_holders(self.lease_group, self.plan.partitions)
                        self.report.partition_holders_max = max(self.report.partition_holders_max, len(holders))
                    elif name == "cut":
                        proxy.cut()
                        proxy.restore()
                        self.report.broker_cuts += 1
                    else:
                        self._terminate_worker_sessions()
                        self.report.db_terminations += 1
                time.sleep(0.05)
        finally:
            connections.close_all()

    def _terminate_worker_sessions(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                [WORKER_APPLICATION_NAME],
            )

    def _settle(self) -> None:
        deadline = time.monotonic() + self.plan.settle_timeout
        total = len(self._written)
        while time.monotonic() < deadline:
            done = Notification.objects.filter(message_id__in=self._written).count()
            self.progress("settling", done, total)
            if done >= total and not self._unsettled_reads() and not self._pending().exists():
                return
            time.sleep(0.5)

    def _watch_partitions_spread(self) -> None:
        wanted = min(self.plan.consumers, self.plan.partitions)
        deadline = time.monotonic() + SPREAD_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            holders = len(lease_holders(self.lease_group, self.plan.partitions))
            self.report.partition_holders_settled = max(self.report.partition_holders_settled, holders)
            if holders >= wanted:
                return
            time.sleep(LEASE_SAMPLE_SECONDS)

    def _pending(self):
        return self._events().filter(published_at__isnull=True, dead_at__isnull=True)

    def _events(self):
        return OutboxEvent.objects.filter(aggregate_type="message", aggregate_id__in=[str(pk) for pk in self._written])

    def _unsettled_reads(self) -> int:
        return Notification.objects.filter(message_id__in=self._read, is_read=False).count()

    # --- the verdict ------------------------------------------------------------------------

    def _measure(self, topology, supervisor: Supervisor) -> None:
        report = self.report
        ids = [str(pk) for pk in self._written]
        report.messages_written = len(self._written)
        report.read_marked = len(self._read)
        events = self._events()
        report.events = events.count()
        report.published = events.filter(published_at__isnull=False).count()
        report.dead = events.filter(dead_at__isnull=False).count()
        report.pending = events.filter(published_at__isnull=True, dead_at__isnull=True).count()
        per_message = dict(
            Notification.objects.filter(message_id__in=self._written).values_list("message_id").annotate(n=Count("pk"))
        )
        report.notifications = sum(per_message.values())
        report.lost = sum(1 for pk in self._written if per_message.get(pk, 0) == 0)
        report.doubled = sum(1 for n in per_message.values() if n > 1)
        report.read_not_synced = self._unsettled_reads()
        report.out_of_order = self._count_out_of_order(ids)
        report.duplicates_absorbed = _log_lines(supervisor, r"consumer\.duplicate_absorbed")
        report.partitions_taken = _log_lines(supervisor, r"consumer\.partition_taken")
        with broker_connection() as conn:
            dead_letter_queue = topology.dead_letter_queue_for(NOTIFICATIONS_CONSUMER)
            _, report.dead_lettered, _ = conn.channel().queue_declare(queue=dead_letter_queue.name, passive=True)
        report.kills = supervisor.kills
        report.worker_deaths = supervisor.deaths

    def _count_out_of_order(self, ids: list[str]) -> int:
        """Aggregates whose events the consumer first applied out of outbox order."""
        last: dict[str, int] = {}
        broken: set[str] = set()
        entries = (
            InboxEntry.objects.filter(consumer=NOTIFICATIONS_CONSUMER, subject__in=ids)
            .exclude(Q(sequence__isnull=True))
            .order_by("id")
            .values_list("subject", "sequence")
        )
        for subject, sequence in entries.iterator():
            if sequence < last.get(subject, -1):
                broken.add(subject)
            last[subject] = sequence
        return len(broken)


def _log_lines(supervisor: Supervisor, pattern: str) -> int:
    """How many times `pattern` occurs in every worker's logs, every incarnation."""
    return sum(len(re.findall(pattern, worker.log_text())) for worker in supervisor.workers)
