"""A resolved knowledge gap points at its representative answer instead of copying the question:
erasing the person who asked it, or the retention policy, then takes the words with the
conversation (the resolution stays, as "a group of N questions")."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0012_insights"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="gapresolution",
            name="question",
        ),
        migrations.AddField(
            model_name="gapresolution",
            name="answer",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="assistant.message",
            ),
        ),
    ]
