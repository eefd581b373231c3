from django.apps import AppConfig


class ParcelsConfig(AppConfig):
    name = "parcels"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from parcels.events import register_parcel_event_schemas

        register_parcel_event_schemas()
