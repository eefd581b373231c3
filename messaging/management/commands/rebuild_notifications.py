"""`python manage.py rebuild_notifications`: the Notification table rebuilt from the event log."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from messaging.rebuild import IncompleteEventLog, notification_events_in_log, rebuild_notifications
from outbox.command_arguments import batch_size_argument


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
        parser.add_argument("--batch-size", type=batch_size_argument, default=1000, help="events per page of the log")

    def handle(self, *args, force: bool, batch_size: int, **options) -> None:
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
        if result.skipped_event_ids:
            self.stdout.write(self.style.WARNING(skipped_events_report(result.skipped_event_ids)))


# Enough to look a few up in the admin; the log has a line for every one.
SHOWN_SKIPPED_IDS = 20


def skipped_events_report(event_ids) -> str:
    """One line: how many malformed events were skipped, and the first event ids."""
    shown = ", ".join(str(event_id) for event_id in event_ids[:SHOWN_SKIPPED_IDS])
    more = f" and {len(event_ids) - SHOWN_SKIPPED_IDS} more" if len(event_ids) > SHOWN_SKIPPED_IDS else ""
    return (
        f"skipped {len(event_ids)} malformed events whose data does not fit their schema "
        f"(log lines notifications.rebuild_skipped_event give each reason): {shown}{more}"
    )
