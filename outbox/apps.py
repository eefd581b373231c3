import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "Transactional outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from config.embedded.backends import describe_backends

        # Every process (web, relay, consumer, a command) says once which database and broker
        # the outbox travels through: on a bare machine they are the embedded ones, and a
        # process pointed elsewhere by a stray environment variable shows it at once.
        logger.info("backends %s", describe_backends())
