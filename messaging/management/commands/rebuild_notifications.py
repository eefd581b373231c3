"""`python manage.py rebuild_notifications`: the Notification table rebuilt from the event log."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from messaging.rebuild import IncompleteEventLog, notification_events_in_log, rebuild_notifications


class Command(BaseCommand):
    help = (
        "Rebuild the notifications from the message.created and message.read events in the outbox, with the "
        "consumer's rules, in one transaction: readers see the old table until it commits. Refuses when "
        "retention pruned part of the log, unless --force."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="rebuild even though events were pruned; notifications of those messages are left as they are",
        )
        parser.add_argument("--batch-size", type=int, default=1000, help="events per page of the log")

    def handle(self, *args, force: bool, batch_size: int, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        with tqdm(total=notification_events_in_log(), desc="events", unit="event", file=self.stderr) as bar:
            try:
                result = rebuild_notifications(force=force, batch_size=batch_size, on_progress=bar.update)
            except IncompleteEventLog as exc:
                raise CommandError(f"{exc} with --force.") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"rebuilt {result.notifications} notifications from {result.events} events "
                f"({result.kept_ids} kept the id of the row they replaced)"
            )
        )
