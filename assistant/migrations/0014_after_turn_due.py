"""Message.after_turn_due_at: the after-turn work owed for an answer, so the workers' sweep can
queue again what the broker lost (assistant.memory.extraction.after_turns_requeue_stuck)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0013_gap_resolution_reads_its_question"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="after_turn_due_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("after_turn_due_at__isnull", False)),
                fields=["after_turn_due_at"],
                name="message_after_turn_due",
            ),
        ),
    ]
