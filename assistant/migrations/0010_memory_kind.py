"""Memory items say what they are (a preference on how to answer, sent with every answer, or a
fact, sent when relevant) and where they came from (written by the person, or learned by the
model); each person may switch learning on or off. Existing items are classified once: an item
with a source message that was not a "remember that ..." command was learned."""

from django.db import migrations, models


def classify_existing(apps, schema_editor):
    # The rules as they are when this runs; later changes to them do not rewrite old items.
    from assistant.memory.services import classify_kind, parse_command

    MemoryItem = apps.get_model("assistant", "MemoryItem")
    for item in MemoryItem.objects.select_related("source_message").only(
        "pk", "text", "source_message__content"
    ):
        item.kind = classify_kind(item.text)
        said = item.source_message.content if item.source_message else None
        item.origin = "learned" if said is not None and not parse_command(said) else "person"
        item.save(update_fields=["kind", "origin"])


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0009_answer_versions"),
    ]

    operations = [
        migrations.AddField(
            model_name="memoryitem",
            name="kind",
            field=models.CharField(
                choices=[("preference", "How to answer"), ("fact", "About you")],
                default="fact",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="memoryitem",
            name="origin",
            field=models.CharField(
                choices=[("person", "Written by you"), ("learned", "Learned automatically")],
                default="person",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="memorysettings",
            name="auto_learn",
            field=models.BooleanField(
                blank=True,
                help_text="Learn from what the person writes after each answer. Unset: the site's default (MEMORY_AUTO_LEARN).",
                null=True,
            ),
        ),
        migrations.RunPython(classify_existing, migrations.RunPython.noop, elidable=True),
    ]
