import django.contrib.postgres.indexes
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # The ops dashboard: workers keep their last error next to their heartbeat, and a BRIN index
    # lets it count recent publishes without scanning every published row (see OutboxEvent.Meta).
    # Built CONCURRENTLY, so a deploy onto a large event table never blocks the write path;
    # that needs a migration outside a transaction.
    atomic = False

    dependencies = [
        ("outbox", "0004_drop_pending_aggregate_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="workerheartbeat",
            name="last_error",
            field=models.CharField(blank=True, default="", max_length=300),
        ),
        migrations.AddField(
            model_name="workerheartbeat",
            name="last_error_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        AddIndexConcurrently(
            model_name="outboxevent",
            index=django.contrib.postgres.indexes.BrinIndex(
                condition=models.Q(("published_at__isnull", False)),
                fields=["published_at"],
                name="outbox_published_at_brin",
            ),
        ),
    ]
