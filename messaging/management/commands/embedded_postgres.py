"""`python manage.py embedded_postgres start|status|stop`: the embedded PostgreSQL of EMBEDDED_DATA_DIR.

scripts/run starts it before its processes and, when that start was its own, stops it on exit:
the web, relay and consumer processes share the server and none of them stops it (see
config/embedded/postgres.py). Any other command that connects with DATABASE_URL unset starts it
too, says so, and leaves it running.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.embedded import postgres

# `status` exits with this when the server is down, as `pg_ctl status` does.
NOT_RUNNING_EXIT_CODE = 3


class Command(BaseCommand):
    help = "Start, check or stop the embedded PostgreSQL (the database when DATABASE_URL is unset)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["start", "status", "stop"])

    def handle(self, *args, action: str, **options) -> None:
        data_dir = settings.EMBEDDED_POSTGRES_DIR
        try:
            if action == "start":
                started = postgres.start(data_dir)
                state = "started" if started else "was already running"
                self.stdout.write(f"the embedded PostgreSQL in {data_dir} {state}")
            elif action == "status":
                if not postgres.is_running(data_dir):
                    self.stdout.write(f"the embedded PostgreSQL in {data_dir} is not running")
                    raise SystemExit(NOT_RUNNING_EXIT_CODE)
                self.stdout.write(f"the embedded PostgreSQL in {data_dir} is running")
            else:
                stopped = postgres.stop(data_dir)
                self.stdout.write(f"stopped the embedded PostgreSQL in {data_dir}" if stopped else "it was not running")
        except postgres.EmbeddedPostgresError as exc:
            raise CommandError(str(exc)) from exc
