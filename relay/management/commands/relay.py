"""`python manage.py relay`: the outbox relay daemon; `--once` publishes what is pending and exits."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from outbox.shutdown import stop_on_signals
from relay.publisher import BrokerUnavailable
from relay.relay import DatabaseUnavailable, Relay


class Command(BaseCommand):
    help = "Publish committed outbox events to the broker (runs until SIGTERM or Ctrl-C)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="publish everything pending, then exit")
        parser.add_argument("--batch-size", type=int, default=None, help="events per claim (default: RELAY_BATCH_SIZE)")

    def handle(self, *args, once: bool, batch_size: int | None, **options) -> None:
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        relay = Relay(batch_size=batch_size)
        stop_on_signals(relay.stop, worker="relay")
        if not once:
            relay.run()
            return
        try:
            result = relay.drain()
        except (BrokerUnavailable, DatabaseUnavailable) as exc:
            raise CommandError(f"relay --once could not finish: {exc}") from exc
        finally:
            relay.publisher.close()
        self.stdout.write(f"published {result.published} of {result.claimed} claimed events")
        if result.failed:
            raise CommandError(f"{result.failed} events could not be published; see last_error in the outbox")
