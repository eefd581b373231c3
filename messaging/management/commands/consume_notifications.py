"""`python manage.py consume_notifications`: build notifications from message events."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from messaging.consumers import NotificationsConsumer
from outbox.shutdown import stop_on_signals


class Command(BaseCommand):
    help = "Consume message events from the broker and materialize notifications (until SIGTERM or Ctrl-C)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--prefetch", type=int, default=None, help="unacked deliveries in flight")

    def handle(self, *args, prefetch: int | None, **options) -> None:
        consumer = NotificationsConsumer(prefetch=prefetch)
        stop_on_signals(consumer.stop, worker="consumer")
        consumer.run()
