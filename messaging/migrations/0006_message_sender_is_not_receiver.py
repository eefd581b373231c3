"""Messages go between two users: the database refuses a message whose sender is its receiver.

NOT VALID: PostgreSQL checks every row written from now on and leaves the rows already there
unread, so a database holding messages sent to oneself (allowed until now) migrates without
losing them. docs/decisions/self-messages.md says how to find them and validate the constraint.
"""

from django.db import migrations, models

CONSTRAINT = models.CheckConstraint(
    condition=~models.Q(sender=models.F("receiver")), name="message_sender_is_not_receiver"
)


class Migration(migrations.Migration):
    dependencies = [("messaging", "0005_cheaper_guard")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddConstraint(model_name="message", constraint=CONSTRAINT)],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE messaging_message ADD CONSTRAINT message_sender_is_not_receiver "
                    "CHECK (sender_id <> receiver_id) NOT VALID",
                    reverse_sql="ALTER TABLE messaging_message DROP CONSTRAINT message_sender_is_not_receiver",
                )
            ],
        )
    ]
