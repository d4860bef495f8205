"""Versions of a turn: an edited question points at the turn's first question (``version_of``)
and a version remembers when it was last chosen (``chosen_at``). Answers to one question were
already its versions (``reply_to``); earlier edits made before this migration stay unlinked."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0008_slackeventreceipt_moves_to_slack"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="version_of",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="later_versions",
                to="assistant.message",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="chosen_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
