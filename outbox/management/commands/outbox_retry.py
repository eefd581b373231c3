"""`python manage.py outbox_retry`: list dead events and send them again."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from outbox.command_arguments import moment_argument
from outbox.selectors import dead_events
from outbox.services import retry_dead_events


class Command(BaseCommand):
    help = "List dead outbox events (after too many failed publishes) and send them again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--event-type", help="only events of this type, e.g. message.created")
        parser.add_argument("--aggregate-type", help="only events of this aggregate type, e.g. message")
        parser.add_argument("--aggregate-id", help="only events of this aggregate")
        parser.add_argument("--since", type=moment_argument, help="only events that died at or after this time")
        parser.add_argument("--until", type=moment_argument, help="only events that died before this time")
        parser.add_argument("--id", type=int, action="append", default=[], dest="ids", help="this event (repeatable)")
        parser.add_argument("--list", action="store_true", dest="list_only", help="list them, send nothing")

    def handle(self, *args, list_only: bool, **options) -> None:
        since, until = options["since"], options["until"]
        if since is not None and until is not None and since >= until:
            raise CommandError(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
        events = dead_events(
            event_type=options["event_type"],
            aggregate_type=options["aggregate_type"],
            aggregate_id=options["aggregate_id"],
            since=since,
            until=until,
            ids=options["ids"],
        )
        rows = list(
            events.values_list(
                "id", "event_type", "aggregate_type", "aggregate_id", "attempts", "dead_at", "last_error"
            )
        )
        if not rows:
            self.stdout.write("no dead events match")
            return
        for event_id, event_type, aggregate_type, aggregate_id, attempts, dead_at, last_error in rows:
            self.stdout.write(
                f"{event_id:>10}  {event_type:<20} {aggregate_type}:{aggregate_id}  attempts={attempts}  "
                f"dead_at={dead_at:%Y-%m-%d %H:%M:%S}  error={last_error}"
            )
        if list_only:
            self.stdout.write(f"{len(rows)} dead events")
            return
        sent = retry_dead_events(events.filter(id__in=[row[0] for row in rows]))
        self.stdout.write(self.style.SUCCESS(f"{sent} dead events are pending again; a running relay publishes them"))
