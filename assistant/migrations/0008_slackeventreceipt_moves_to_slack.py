"""SlackEventReceipt now belongs to the Slack app (label ``slack``, migration 0001): it leaves
this app's state only. The table keeps its name and its rows; nothing in the database changes."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0007_answer_cache"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="SlackEventReceipt")],
            database_operations=[],
        ),
    ]
