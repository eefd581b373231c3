from django.conf import settings
from django.db import migrations, models

# Rows that would break the constraint: every `message` notification of a message but one. The
# one kept is the notification built from the message's own `message.created` in the outbox
# (a second one came from an event this service never wrote), else the oldest.
DELETE_EXTRA_MESSAGE_NOTIFICATIONS = """
    DELETE FROM messaging_notification WHERE notification_id IN (
        SELECT notification_id FROM (
            SELECT n.notification_id,
                   row_number() OVER (
                       PARTITION BY n.message_id
                       ORDER BY (e.event_id IS NULL), n.created_at, n.notification_id
                   ) AS rank
            FROM messaging_notification n
            LEFT JOIN outbox_outboxevent e
                   ON e.event_id = n.source_event_id
                  AND e.event_type = 'message.created'
                  AND e.aggregate_id = n.message_id::text
            WHERE n.notification_type = 'message' AND n.message_id IS NOT NULL
        ) ranked
        WHERE rank > 1
    )
"""


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0007_guard_checks_the_created_event_names_the_message"),
        ("outbox", "0007_lean_triggers_and_wake_gate"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunSQL(DELETE_EXTRA_MESSAGE_NOTIFICATIONS, reverse_sql=migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.UniqueConstraint(
                condition=models.Q(("notification_type", "message")),
                fields=("message",),
                name="one_notification_per_message",
            ),
        ),
    ]
