"""`outbox_bench --partitioned-consumers`: one consumer process against two on N partitions, and hand-over.

1. Drain rate, alternated round by round: a backlog of --backlog messages is published by
   `relay --once` into the --consumer-partitions partition queues, then drained by one
   `consume_notifications` process, and in the same round by two (the order flips each round, so a
   change in the machine's load falls on both). The processes start on empty partitions and are
   paused (SIGSTOP) once their leases have spread; the relay publishes, the server is settled, and
   they resume together (SIGCONT). The figure is their steady drain, not their start-up or the first
   rebalance: events settled by all of them over the span from the first batch to the last.
2. Hand-over: two processes share the partitions; one is killed -9 and the clock runs until the
   survivor holds every partition's lease and the broker shows exactly one consumer on every
   partition queue (the killed one's gone, the survivor's subscribed). It follows
   CONSUMER_REBALANCE_SECONDS, at its default.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import time
from collections.abc import Callable

from django.conf import settings

from messaging.topology import NOTIFICATIONS_CONSUMER, build_topology
from outbox.broker import broker_connection
from outbox.partition_leases import fair_share, lease_holders
from tooling.benchmarks.pipeline import BenchConfig, PipelineBench, Progress, manage_py
from tooling.faults.supervisor import Supervisor

PROCESS_COUNTS = (1, 2)
# How long consumer processes may take to start and share the partitions, and the survivor to take
# them all; far above what either takes, so only a broken run waits this long.
SPREAD_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.01


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = SPREAD_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


class PartitionedConsumersBench(PipelineBench):
    """Events/s of one and two consumer processes on the same partitions, and the hand-over time."""

    def __init__(self, config: BenchConfig, *, progress: Progress | None = None) -> None:
        super().__init__(config, progress=progress)
        self.partitions = config.consumer_partitions
        self.topology = build_topology(self.namespace, partitions=self.partitions)
        self.partition_queues = self.topology.partitions_for(NOTIFICATIONS_CONSUMER).queues
        # The relay declares the topology too, with the shared user: the same count everywhere, or it
        # would declare and fill the plain queue that nobody reads.
        self.env["CONSUMER_PARTITIONS"] = str(self.partitions)
        self._consumer_logs = self.log_dir / "consumers.log"

    def measure(self) -> None:
        rounds = []
        for number in range(self.config.limit_rounds):
            order = PROCESS_COUNTS if number % 2 == 0 else PROCESS_COUNTS[::-1]
            rounds.append({count: self._drain_rate(count) for count in order})
            self.progress("1 and 2 consumer processes", number + 1, self.config.limit_rounds)
        for count in PROCESS_COUNTS:
            self.result.set(f"partitioned.{count}_consumers.events_per_s", statistics.median(r[count] for r in rounds))
        self.result.set("partitioned.2_vs_1_consumers", statistics.median(r[2] / r[1] for r in rounds))
        handovers = []
        for number in range(self.config.limit_rounds):
            handovers.append(self._handover_seconds(victim=number % 2))
            self.progress("hand-over", number + 1, self.config.limit_rounds)
        self.result.set("partitioned.handover_seconds", statistics.median(handovers))
        self.result.set("partitioned.handover_seconds.max", max(handovers))
        self.result.set("partitioned.partitions", self.partitions)

    # --- 1. drain rate ------------------------------------------------------------------------

    def _drain_rate(self, count: int) -> float:
        """Events/s of `count` consumer processes draining a fresh backlog from their spread partitions."""
        self._make_backlog(self.config.backlog)
        # Paused with deliveries in their sockets while the relay runs: the broker must not give up
        # on their heartbeats meanwhile.
        env = {**self.env, "BROKER_HEARTBEAT_SECONDS": "600"}
        with self._consumer_logs.open("ab") as log:
            processes = [
                subprocess.Popen(  # noqa: S603 - our own manage.py
                    manage_py("consume_notifications", "--exit-when-idle", "--json"),
                    cwd=settings.BASE_DIR,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                )
                for _ in range(count)
            ]
        try:
            self._wait_for_spread(count)
            for process in processes:
                process.send_signal(signal.SIGSTOP)
            published = sum(t["published"] for t in self._run_relays_once(1))
            self._settle_server()
            for process in processes:
                process.send_signal(signal.SIGCONT)
            stats = [self._consumer_stats(process) for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        self._discard_notification_events()
        settled = sum(s["settled"] for s in stats)
        if settled != published:
            raise RuntimeError(f"{count} consumer processes settled {settled} of the {published} events published")
        span = max(s["last_at"] for s in stats) - min(s["first_at"] for s in stats if s["first_at"])
        self.progress(f"consumers x{count}", 1, 1)
        return settled / span

    def _consumer_stats(self, process: subprocess.Popen) -> dict:
        out, _ = process.communicate(timeout=1800)
        if process.returncode != 0:
            raise RuntimeError(f"a consumer failed (exit {process.returncode}); see {self._consumer_logs}")
        return json.loads(out.strip().splitlines()[-1])

    def _wait_for_spread(self, count: int) -> None:
        # Every process at its fair share, not merely every partition held: one that took a partition
        # the other was still giving up holds one too many until the next rebalance (3 and 1 of 4).
        shares = sorted(fair_share(self.partitions, list(range(count)), rank) for rank in range(count))
        group = self.topology.queue_for(NOTIFICATIONS_CONSUMER).name

        def spread() -> bool:
            return sorted(len(p) for p in lease_holders(group, self.partitions).values()) == shares

        _wait_for(spread, f"{count} consumer processes sharing the {self.partitions} partitions")

    # --- 2. hand-over -------------------------------------------------------------------------

    def _handover_seconds(self, *, victim: int) -> float:
        """Seconds from killing one of two consumer processes until the other consumes every partition."""
        supervisor = Supervisor(self.log_dir, self.env)
        workers = [supervisor.add(f"handover-consumer-{n}", ["consume_notifications"]) for n in range(2)]
        try:
            self._wait_for_spread(2)
            with broker_connection() as conn:
                channel = conn.channel()
                started = time.perf_counter()
                workers[victim].kill()
                _wait_for(lambda: self._one_consumer_on_every_partition(channel), "the survivor taking every partition")
                return time.perf_counter() - started
        finally:
            supervisor.stop_all()

    def _one_consumer_on_every_partition(self, channel) -> bool:
        held = lease_holders(self.topology.queue_for(NOTIFICATIONS_CONSUMER).name, self.partitions)
        if list(held.values()) != [set(range(self.partitions))]:
            return False
        # Single active consumer: the count includes waiting consumers, so a killed one the broker
        # still lists beside the survivor makes it 2.
        return all(channel.queue_declare(queue=q.name, passive=True)[2] == 1 for q in self.partition_queues)
