"""`python manage.py outbox_prune --older-than 7d`: the retention path, in small batches."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils import timezone
from tqdm import tqdm

from outbox.command_arguments import batch_size_argument, duration_argument
from outbox.models import InboxEntry, OutboxEvent
from outbox.retention import delete_old_inbox_entries, delete_published_events, delete_stale_heartbeats


class Command(BaseCommand):
    help = "Delete published outbox events and inbox rows older than a duration; never pending or dead events."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", type=duration_argument, required=True, help="e.g. 7d, 12h, 30m")
        parser.add_argument("--batch-size", type=batch_size_argument, default=1000, help="rows per short transaction")

    def handle(self, *args, older_than, batch_size: int, **options) -> None:
        cutoff = timezone.now() - older_than
        events_total = OutboxEvent.objects.filter(published_at__lt=cutoff).count()
        with tqdm(total=events_total, desc="published events", unit="row", file=self.stderr) as bar:
            events = delete_published_events(older_than, batch_size=batch_size, on_progress=bar.update)
        inbox_total = InboxEntry.objects.filter(processed_at__lt=cutoff).count()
        with tqdm(total=inbox_total, desc="inbox entries", unit="row", file=self.stderr) as bar:
            inbox = delete_old_inbox_entries(older_than, batch_size=batch_size, on_progress=bar.update)
        heartbeats = delete_stale_heartbeats(older_than)
        self.stdout.write(
            f"deleted {events} published events, {inbox} inbox entries and {heartbeats} stale heartbeats "
            f"older than {cutoff:%Y-%m-%d %H:%M:%S} UTC"
        )
