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
