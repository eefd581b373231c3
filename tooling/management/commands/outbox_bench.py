"""`python manage.py outbox_bench`: measure the pipeline against this machine's own limit."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from tooling.benchmarks.partitioned_consumers import PartitionedConsumersBench
from tooling.benchmarks.partitions import PartitionBench
from tooling.benchmarks.pipeline import STAGES, BenchConfig, BenchRefused, PipelineBench
from tooling.benchmarks.publish_paths import PublishPathBench
from tooling.benchmarks.tracing import TracingBench


class Command(BaseCommand):
    help = (
        "Measure write path, relay and consumer throughput, end-to-end latency and flatness against the "
        "configured PostgreSQL and RabbitMQ, next to raw psycopg/py-amqp loops. Cleans up after itself."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--backlog", type=int, default=BenchConfig.backlog, help="pending events for the throughput runs"
        )
        parser.add_argument(
            "--write-messages", type=int, default=BenchConfig.write_messages, help="messages per write-path run"
        )
        parser.add_argument(
            "--write-rounds",
            type=int,
            default=BenchConfig.write_rounds,
            help="write-path rounds, each with and without; medians are reported",
        )
        parser.add_argument(
            "--writers",
            type=int,
            default=BenchConfig.writers,
            help="concurrent writers (threads, then processes) in later write runs",
        )
        parser.add_argument(
            "--limit-rounds",
            type=int,
            default=BenchConfig.limit_rounds,
            help="rounds of our relay and consumer alternated with the raw loops; medians are reported",
        )
        parser.add_argument(
            "--rates", default=",".join(map(str, BenchConfig.rates)), help="offered messages per second for latency"
        )
        parser.add_argument(
            "--latency-seconds", type=float, default=BenchConfig.latency_seconds, help="duration of each latency run"
        )
        parser.add_argument(
            "--latency-windows",
            type=int,
            default=BenchConfig.latency_windows,
            help="latency windows per rate; each percentile is their median",
        )
        parser.add_argument(
            "--old-rows", type=int, default=BenchConfig.old_rows, help="published rows for flatness; 0 skips"
        )
        parser.add_argument("--batch-size", type=int, default=BenchConfig.batch_size, help="relay batch size")
        parser.add_argument("--prefetch", type=int, default=BenchConfig.prefetch, help="consumer prefetch")
        parser.add_argument(
            "--publish-paths",
            action="store_true",
            help="measure only the relay's publish: its hand-packed frames against py-amqp's basic_publish, "
            "--limit-rounds alternated rounds of --backlog events",
        )
        parser.add_argument(
            "--tracing",
            action="store_true",
            help="measure only what tracing costs: --write-rounds alternated write runs and the end-to-end latency "
            "at the first of --rates, tracing off and on with spans dropped",
        )
        parser.add_argument(
            "--partitions",
            action="store_true",
            help="measure only the time partitions: relay rate and p99 latency at the first --rates rate, empty "
            "against --old-rows published rows over --old-days daily partitions; then retention per day of data, "
            "row-by-row prune against partition drop (time and WAL)",
        )
        parser.add_argument(
            "--old-days", type=int, default=BenchConfig.old_days, help="daily partitions of --old-rows (--partitions)"
        )
        parser.add_argument(
            "--partitioned-consumers",
            action="store_true",
            help="measure only partitioned consumption: one consumer process against two draining --backlog events "
            "from --consumer-partitions partitions, --limit-rounds alternated rounds; then the seconds until a "
            "killed process's partitions are consumed by the other",
        )
        parser.add_argument(
            "--consumer-partitions",
            type=int,
            default=BenchConfig.consumer_partitions,
            help="partition queues of the consumer (CONSUMER_PARTITIONS) for --partitioned-consumers; at least 2",
        )
        parser.add_argument(
            "--only",
            default="",
            help=f"measure only these stages of the main run, separated by commas: {', '.join(STAGES)}",
        )
        parser.add_argument("--json", action="store_true", help="print the figures as JSON for scripts")

    def handle(self, *args, **options) -> None:
        try:
            rates = tuple(int(rate) for rate in options["rates"].split(","))
        except ValueError:
            raise CommandError("--rates takes numbers separated by commas, e.g. 200,1000") from None
        positive = (
            "backlog",
            "write_messages",
            "write_rounds",
            "writers",
            "limit_rounds",
            "latency_windows",
            "old_days",
        )
        for name in (*positive, "batch_size", "prefetch"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if options["consumer_partitions"] < 2:
            raise CommandError("--consumer-partitions must be at least 2: two processes share them")
        if options["old_rows"] < 0 or options["latency_seconds"] <= 0 or not rates or min(rates) < 1:
            raise CommandError("--old-rows must be >= 0, --latency-seconds and every rate > 0")
        only = tuple(stage.strip() for stage in options["only"].split(",") if stage.strip())
        if unknown := sorted(set(only) - set(STAGES)):
            raise CommandError(f"--only takes stages among {', '.join(STAGES)}; not {', '.join(unknown)}")
        config = BenchConfig(
            only=only,
            backlog=options["backlog"],
            write_messages=options["write_messages"],
            write_rounds=options["write_rounds"],
            limit_rounds=options["limit_rounds"],
            writers=options["writers"],
            rates=rates,
            latency_seconds=options["latency_seconds"],
            latency_windows=options["latency_windows"],
            old_rows=options["old_rows"],
            old_days=options["old_days"],
            batch_size=options["batch_size"],
            prefetch=options["prefetch"],
            consumer_partitions=options["consumer_partitions"],
        )
        bars: dict[str, tqdm] = {}

        def progress(phase: str, done: int, total: int) -> None:
            bar = bars.get(phase)
            if bar is None:
                bar = bars[phase] = tqdm(total=total, desc=phase, file=self.stderr, leave=False)
            bar.update(done - bar.n)

        try:
            bench = PipelineBench
            if options["publish_paths"]:
                bench = PublishPathBench
            elif options["tracing"]:
                bench = TracingBench
            elif options["partitions"]:
                bench = PartitionBench
            elif options["partitioned_consumers"]:
                bench = PartitionedConsumersBench
            run = bench(config, progress=progress)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        try:
            result = run.run()
        except BenchRefused as exc:
            raise CommandError(str(exc)) from exc
        for bar in bars.values():
            bar.close()
        figures = result.figures
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2, sort_keys=True))
            return
        self.stdout.write(
            f"outbox_bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
            f"({platform.processor() or platform.machine()}, {_cores()} cores), backlog {config.backlog}"
        )
        width = max(len(name) for name in figures)
        for name in sorted(figures):
            self.stdout.write(f"  {name:<{width}}  {figures[name]:>12,.3f}")


def _cores() -> int:
    import os

    return os.cpu_count() or 0
