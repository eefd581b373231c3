import logging

from django.apps import AppConfig

logger = logging.getLogger("embedded")


class EmbeddedConfig(AppConfig):
    """The bare-machine backends (embedded PostgreSQL, serverless broker) and the start-up line."""

    name = "embedded"

    def ready(self) -> None:
        from embedded.backends import describe_backends

        # Every process (web, relay, consumer, a command) says once which backends it talks to.
        logger.info("backends %s", describe_backends())
