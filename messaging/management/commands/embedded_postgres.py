"""`python manage.py embedded_postgres stop`: stop the embedded PostgreSQL of EMBEDDED_DATA_DIR.

scripts/run calls it on exit: the web, relay and consumer processes share the server and none
of them stops it (see config/embedded/postgres.py). There is no `start`: any command that loads the
settings with DATABASE_URL unset starts it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.embedded import postgres


class Command(BaseCommand):
    help = "Stop the embedded PostgreSQL (the database when DATABASE_URL is unset)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["stop"])

    def handle(self, *args, action: str, **options) -> None:
        data_dir = settings.EMBEDDED_POSTGRES_DIR
        try:
            stopped = postgres.stop(data_dir)
        except postgres.EmbeddedPostgresError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"stopped the embedded PostgreSQL in {data_dir}" if stopped else "it was not running")
