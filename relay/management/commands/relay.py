"""`python manage.py relay`: the outbox relay daemon; `--once` publishes what is pending and exits."""

from __future__ import annotations

import time
from json import dumps

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from outbox.metrics_server import serving_worker_metrics
from outbox.shutdown import stop_on_signals
from relay.amqp_publisher import BrokerUnavailable
from relay.relay import DatabaseUnavailable, Relay


class Command(BaseCommand):
    help = "Publish committed outbox events to the broker (runs until SIGTERM or Ctrl-C)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="publish everything pending, then exit")
        parser.add_argument("--batch-size", type=int, default=None, help="events per claim (default: RELAY_BATCH_SIZE)")
        parser.add_argument("--json", action="store_true", help="with --once: print the result and timing as JSON")

    def handle(self, *args, once: bool, batch_size: int | None, json: bool, **options) -> None:
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        relay = Relay(batch_size=batch_size)
        stop_on_signals(relay.stop, worker="relay")
        if not once:
            with serving_worker_metrics(settings.RELAY_METRICS_PORT):
                relay.run()
            return
        try:
            relay.publisher.connect()  # connected before the clock starts: timing is of relaying
            started = time.time()
            result = relay.drain()
        except (BrokerUnavailable, DatabaseUnavailable) as exc:
            raise CommandError(f"relay --once could not finish: {exc}") from exc
        finally:
            relay.publisher.close()
        finished = time.time()
        if json:
            self.stdout.write(
                dumps(
                    {"published": result.published, "failed": result.failed, "started": started, "finished": finished}
                )
            )
        else:
            self.stdout.write(f"published {result.published} of {result.claimed} claimed events")
        if result.failed:
            raise CommandError(f"{result.failed} events could not be published; see last_error in the outbox")
