"""The event and inbox tables become range-partitioned on event_id (docs/decisions/0005-time-partitions.md).

Outside a transaction: each step of the conversion commits on its own, and only the last one, a
catalog-only swap, locks the table. Django's model state does not change: the database's primary
key becomes (id, event_id), which the ORM never needs to know.
"""

from django.db import migrations

from outbox.partitioned_tables import convert_to_partitioned, convert_to_single

# The append-only delete guards, ignored while rows with pre-UUIDv7 ids move to the DEFAULT partition.
DELETE_GUARDS = (
    "pgtrigger_outbox_events_append_only_delete_ed1da",
    "pgtrigger_outbox_events_keep_pending_1e3c3",
)


def partition(apps, schema_editor):
    using = schema_editor.connection.alias
    convert_to_partitioned(
        "outbox_outboxevent",
        guarded_triggers=DELETE_GUARDS,
        preferred_indexes=("outbox_pending_idx",),
        using=using,
    )
    convert_to_partitioned("outbox_inboxentry", using=using)


def unpartition(apps, schema_editor):
    using = schema_editor.connection.alias
    convert_to_single("outbox_inboxentry", using=using)
    convert_to_single("outbox_outboxevent", using=using)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("outbox", "0008_worker_consecutive_failures")]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]
