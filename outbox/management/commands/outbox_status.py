"""`python manage.py outbox_status [--json]`: the ops dashboard's snapshot, for a terminal."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from outbox.status import ops_snapshot
from outbox.status_text import render_status


class Command(BaseCommand):
    help = (
        "One screen of the outbox's state: backlog, publish and consume rates, workers, dead events, "
        "dead-letter queue depths and recent errors."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the snapshot as JSON")

    def handle(self, *args, as_json: bool, **options) -> None:
        snapshot = ops_snapshot()
        if as_json:
            self.stdout.write(json.dumps(snapshot.as_dict(), indent=2))
        else:
            self.stdout.write(render_status(snapshot))
