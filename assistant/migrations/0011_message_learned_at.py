"""An answer records when memory extraction finished with its turn, so a task delivered again
(its worker was killed, or the broker sent it twice) learns nothing more."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0010_memory_kind"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="learned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
