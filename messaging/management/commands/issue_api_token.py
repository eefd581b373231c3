"""`python manage.py issue_api_token <username> [--rotate]`: print a user's API token."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from messaging import selectors, services


class Command(BaseCommand):
    help = (
        "Print the API token of an active user, creating it the first time; --rotate replaces it. "
        "The token goes to stdout only."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--rotate", action="store_true", help="replace the token; the old one stops working")

    def handle(self, *args, username: str, rotate: bool, **options) -> None:
        user = selectors.active_user_by_username(username)
        if user is None:
            raise CommandError(f"no active user named {username!r}")
        try:
            key = services.issue_api_token(user, rotate=rotate)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(key)
