from django.db import migrations


class Migration(migrations.Migration):
    # The claim's ordering probe uses outbox_aggregate_idx (see outbox.services.CLAIM_SQL); the
    # partial twin only cost every write and, with stale statistics, misled the planner.
    dependencies = [("outbox", "0003_drop_type_time_index")]

    operations = [
        migrations.RemoveIndex(model_name="outboxevent", name="outbox_pending_aggregate_idx"),
    ]
