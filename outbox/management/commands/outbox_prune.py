"""`python manage.py outbox_prune [--older-than 7d]`: retention, by dropping whole time partitions."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from tqdm import tqdm

from outbox.command_arguments import batch_size_argument, duration_argument
from outbox.partitions import (
    EVENTS_TABLE,
    INBOX_TABLE,
    PARTITIONED_TABLES,
    default_partition,
    drop_expired_partitions,
    expired_partitions,
)
from outbox.retention import delete_old_inbox_entries, delete_published_events, delete_stale_heartbeats


class Command(BaseCommand):
    help = (
        "Drop the outbox's and inbox's time partitions older than a duration (OUTBOX_RETENTION_DAYS by default), "
        "keeping any that holds a pending or dead event; old rows of the DEFAULT partitions are deleted in batches."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", type=duration_argument, default=None, help="e.g. 7d, 12h, 30m")
        parser.add_argument(
            "--batch-size", type=batch_size_argument, default=1000, help="DEFAULT partition rows per short transaction"
        )

    def handle(self, *args, older_than: timedelta | None, batch_size: int, **options) -> None:
        older_than = older_than or timedelta(days=settings.OUTBOX_RETENTION_DAYS)
        expired = sum(len(expired_partitions(table, older_than)) for table in PARTITIONED_TABLES)
        with tqdm(total=expired, desc="partitions", unit="partition", file=self.stderr) as bar:
            result = drop_expired_partitions(older_than, on_progress=lambda partition, outcome: bar.update(1))
        for name, reason in result.kept.items():
            self.stdout.write(f"kept {name}: {reason}")
        events = inbox = 0
        if default := default_partition(EVENTS_TABLE):
            with tqdm(desc=f"{default} rows", unit="row", file=self.stderr) as bar:
                events = delete_published_events(
                    older_than, batch_size=batch_size, on_progress=bar.update, table=default
                )
        if default := default_partition(INBOX_TABLE):
            with tqdm(desc=f"{default} rows", unit="row", file=self.stderr) as bar:
                inbox = delete_old_inbox_entries(
                    older_than, batch_size=batch_size, on_progress=bar.update, table=default
                )
        heartbeats = delete_stale_heartbeats(older_than)
        self.stdout.write(
            f"dropped {len(result.dropped)} partitions (about {result.dropped_rows} rows), kept {len(result.kept)}; "
            f"deleted {events} published events and {inbox} inbox entries from the DEFAULT partitions "
            f"and {heartbeats} stale heartbeats"
        )
