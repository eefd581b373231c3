"""`python manage.py show_backends`: print the database and broker this configuration uses."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from config.embedded.backends import describe_database
from outbox.broker import describe_broker


class Command(BaseCommand):
    help = "Print the database and broker in use, passwords masked (starts the embedded PostgreSQL if it is the one)."

    def handle(self, *args, **options) -> None:
        self.stdout.write(f"database: {describe_database()}")
        self.stdout.write(f"broker:   {describe_broker()}")
