from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "Transactional outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        # Tracing off (the default) imports no SDK and installs nothing: outbox.tracing.ACTIVE stays False.
        if settings.OTEL_TRACES_EXPORTER != "none":
            from outbox.trace_setup import start_tracing

            start_tracing()
