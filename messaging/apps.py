import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing the module connects the receivers; a failure here must stop start-up, since
        # messages written without their receivers would be refused by the database at commit.
        from messaging import signals  # noqa: F401
        from messaging.events import register_message_event_schemas

        register_message_event_schemas()

        from config.embedded.backends import describe_backends

        # Every process (web, relay, consumer, a command) says once which database and broker
        # it uses: on a bare machine they are the embedded ones, and a process pointed elsewhere
        # by a stray environment variable shows it at once. Here, not in the reusable outbox app,
        # because the embedded backends are this project's configuration.
        logger.info("backends %s", describe_backends())
