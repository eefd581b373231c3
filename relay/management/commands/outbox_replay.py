"""`python manage.py outbox_replay`: publish past events again so that consumers can rebuild their state."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from outbox.command_arguments import batch_size_argument, moment_argument
from relay.replay import InvalidReplay, ReplaySelection, ReplayStopped, plan_replay, replay_events


class Command(BaseCommand):
    help = (
        "Publish already-published outbox events again, in id order, with publisher confirms. By default to "
        "the events exchange, so every consumer of every team bound for them gets them; --consumer NAME "
        "sends them to that consumer's queue only. Consumers absorb events they already applied "
        "(their inbox); --forget-inbox makes NAME apply them again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--since",
            type=moment_argument,
            help="events that occurred at or after this ISO 8601 time (UTC unless it has an offset)",
        )
        parser.add_argument(
            "--until",
            type=moment_argument,
            help="events that occurred before this ISO 8601 time (UTC unless it has an offset)",
        )
        parser.add_argument(
            "--type", action="append", default=[], dest="event_types", help="events of this type (repeatable)"
        )
        parser.add_argument("--aggregate-type", help="events of this aggregate type, e.g. message")
        parser.add_argument("--aggregate-id", help="events of this aggregate")
        parser.add_argument("--after-id", type=int, default=0, help="resume: only events with a larger outbox id")
        parser.add_argument(
            "--consumer",
            metavar="NAME",
            help="send to this consumer's queue only (default: the events exchange, i.e. every consumer)",
        )
        parser.add_argument(
            "--forget-inbox",
            action="store_true",
            help="with --consumer: forget its inbox entries of the replayed events, so it applies them again",
        )
        parser.add_argument(
            "--batch-size", type=batch_size_argument, default=None, help="events per page (default: RELAY_BATCH_SIZE)"
        )
        parser.add_argument("--dry-run", action="store_true", help="say what would be replayed, send nothing")

    def handle(self, *args, consumer: str | None, forget_inbox: bool, dry_run: bool, batch_size, **options) -> None:
        try:
            selection = ReplaySelection(
                since=options["since"],
                until=options["until"],
                event_types=tuple(options["event_types"]),
                aggregate_type=options["aggregate_type"],
                aggregate_id=options["aggregate_id"],
                after_id=options["after_id"],
            )
            plan = plan_replay(selection, consumer=consumer, forget_inbox=forget_inbox)
        except InvalidReplay as exc:
            raise CommandError(str(exc)) from exc

        per_type = ", ".join(f"{event_type}: {count}" for event_type, count in plan.counts.items())
        self.stdout.write(f"{plan.total} published events to replay ({per_type or 'none'})")
        self.stdout.write(f"to {plan.describe_target()}")
        if consumer is None:
            self.stdout.write("(the default; --consumer NAME sends to one consumer's queue only)")
        for event_type, count in plan.not_routed.items():
            self.stdout.write(
                f"skipping {count} {event_type} events: consumer {plan.consumer!r} is not bound for that type"
            )
        if forget_inbox:
            self.stdout.write(f"forgetting the inbox entries of consumer {consumer!r} for these events, page by page")
        if dry_run:
            self.stdout.write("dry run: nothing sent")
            return
        if not plan.total:
            return
        with tqdm(total=plan.total, desc="replayed", unit="event", file=self.stderr) as bar:
            try:
                result = replay_events(plan, batch_size=batch_size, on_progress=bar.update)
            except ReplayStopped as exc:
                raise CommandError(str(exc)) from exc
        forgotten = f"; {result.forgotten_inbox_entries} inbox entries forgotten" if forget_inbox else ""
        self.stdout.write(
            self.style.SUCCESS(f"replayed {result.replayed} events, each confirmed by the broker{forgotten}")
        )
