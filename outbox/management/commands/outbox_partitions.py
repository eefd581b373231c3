"""`python manage.py outbox_partitions [list|create]`: the time partitions of the event and inbox tables."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from outbox.partitions import (
    PARTITIONED_TABLES,
    create_all_partitions_ahead,
    list_partitions,
    moment_of,
    partition_report,
)
from outbox.recent_events import refresh_recent_events_view
from outbox.status_text import partition_lines


class Command(BaseCommand):
    help = (
        "List the time partitions of the outbox and inbox tables (with what retention keeps and the DEFAULT "
        "partitions' rows), or create the missing ones OUTBOX_PARTITIONS_AHEAD_DAYS ahead and move the "
        "recent-events view to today, as the relay does."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", nargs="?", choices=["list", "create"], default="list")

    def handle(self, *args, action: str, **options) -> None:
        if action == "create":
            created = create_all_partitions_ahead()
            self.stdout.write(f"created {len(created)} partitions" + "".join(f"\n  {name}" for name in created))
            if refresh_recent_events_view():
                self.stdout.write("moved the recent-events view to today")
            return
        for table in PARTITIONED_TABLES:
            self.stdout.write(table)
            for partition in list_partitions(table):
                if partition.is_default:
                    span = "DEFAULT"
                else:
                    start = "MINVALUE" if partition.lower is None else f"{_moment(partition.lower)}"
                    end = "MAXVALUE" if partition.upper is None else f"{_moment(partition.upper)}"
                    span = f"{start} .. {end}"
                self.stdout.write(f"  {partition.name:<40} {span:<45} ~{partition.estimated_rows} rows")
        self.stdout.write("\n".join(partition_lines(partition_report(settings.OUTBOX_RETENTION_DAYS))))


def _moment(event_id) -> str:
    return f"{moment_of(event_id):%Y-%m-%d %H:%M}"
