"""The recent-events view, for probes that must not lock every partition (outbox.recent_events)."""

from django.db import migrations

from outbox.recent_events import drop_recent_events_view, refresh_recent_events_view


def create_view(apps, schema_editor):
    refresh_recent_events_view(using=schema_editor.connection.alias)


def drop_view(apps, schema_editor):
    drop_recent_events_view(using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("outbox", "0009_time_partitions")]

    operations = [migrations.RunPython(create_view, drop_view, elidable=False)]
