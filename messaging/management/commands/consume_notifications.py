"""`python manage.py consume_notifications`: build notifications from message events."""

from __future__ import annotations

from dataclasses import asdict
from json import dumps

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from messaging.consumers import NotificationsConsumer
from outbox.metrics_server import serving_worker_metrics
from outbox.partition_topology import TopologyMismatch
from outbox.shutdown import stop_on_signals


class Command(BaseCommand):
    help = "Consume message events from the broker and materialize notifications (until SIGTERM or Ctrl-C)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--prefetch", type=int, default=None, help="unacked deliveries in flight")
        parser.add_argument(
            "--exit-when-idle", action="store_true", help="stop once the queue is drained (benchmarks, scripts)"
        )
        parser.add_argument("--json", action="store_true", help="print what was settled, and when, as JSON")

    def handle(self, *args, prefetch: int | None, exit_when_idle: bool, json: bool, **options) -> None:
        if prefetch is not None and prefetch < 1:
            raise CommandError("--prefetch must be at least 1")
        consumer = NotificationsConsumer(prefetch=prefetch)
        try:
            consumer.check_topology()
        except TopologyMismatch as exc:
            raise CommandError(str(exc)) from exc
        consumer.exit_when_idle = exit_when_idle
        stop_on_signals(consumer.stop, worker="consumer")
        with serving_worker_metrics(settings.CONSUMER_METRICS_PORT):
            consumer.run()
        if consumer.refusal is not None:
            # Refused at a reconnect, as at the start: the same line, exit status 1.
            raise CommandError(str(consumer.refusal))
        if json:
            self.stdout.write(dumps(asdict(consumer.stats)))
