"""Write the AsyncAPI document of the events to docs/asyncapi.yaml, or check that it is current."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from messaging.contract import COMMITTED_DOCUMENT, asyncapi_yaml


class Command(BaseCommand):
    help = "Write the AsyncAPI 3.0 document of the published events (docs/asyncapi.yaml by default)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", type=Path, default=COMMITTED_DOCUMENT, help="where to write it")
        parser.add_argument("--check", action="store_true", help="write nothing; fail when the file is not current")

    def handle(self, *args, output: Path, check: bool, **options) -> None:
        # The production names, whatever BROKER_NAMESPACE a test or a developer has set.
        document = asyncapi_yaml(namespace="")
        if check:
            if not output.exists() or output.read_text() != document:
                raise CommandError(f"{output} is not current: run `python manage.py asyncapi`")
            self.stdout.write(f"{output} is current")
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(document)
        self.stdout.write(f"wrote {output}")
