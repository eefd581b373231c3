"""`python manage.py embedded_postgres status|stop`: the embedded PostgreSQL of EMBEDDED_DATA_DIR."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from embedded import postgres


class Command(BaseCommand):
    help = "Show or stop the embedded PostgreSQL (the database when DATABASE_URL is unset)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args, action: str, **options) -> None:
        data_dir = settings.EMBEDDED_POSTGRES_DIR
        if action == "status":
            url = postgres.running_url(data_dir)
            self.stdout.write(f"running at {url} (data {data_dir})" if url else f"not running (data {data_dir})")
            return
        try:
            stopped = postgres.stop(data_dir)
        except postgres.EmbeddedPostgresError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"stopped the embedded PostgreSQL in {data_dir}" if stopped else "it was not running")
