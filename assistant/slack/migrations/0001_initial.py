"""SlackEventReceipt moves here from the assistant app (its migration 0008) without touching
the database: the model enters this app's state over the table the assistant app created
(``assistant_slackeventreceipt``, kept by ``db_table``). Its content type is relabelled, so
permissions granted on it (and admin log entries) stay attached and no stale type is left."""

from django.db import migrations, models

MODEL = "slackeventreceipt"


def _relabel_content_type(apps, schema_editor, *, old: str, new: str) -> None:
    from django.contrib.contenttypes.models import ContentType as CurrentContentType

    content_types = apps.get_model("contenttypes", "ContentType").objects.using(
        schema_editor.connection.alias
    )
    if not content_types.filter(app_label=new, model=MODEL).exists():
        content_types.filter(app_label=old, model=MODEL).update(app_label=new)
    CurrentContentType.objects.clear_cache()


def forwards(apps, schema_editor):
    _relabel_content_type(apps, schema_editor, old="assistant", new="slack")


def backwards(apps, schema_editor):
    _relabel_content_type(apps, schema_editor, old="slack", new="assistant")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("assistant", "0008_slackeventreceipt_moves_to_slack"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="SlackEventReceipt",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "key",
                            models.CharField(
                                help_text="Slack's event id (or trigger id).",
                                max_length=200,
                                unique=True,
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("event", "Event"),
                                    ("command", "Slash command"),
                                    ("interaction", "Interaction"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("payload", models.JSONField()),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("received", "Received"),
                                    ("handling", "Being answered"),
                                    ("answered", "Answered"),
                                    ("ignored", "Ignored"),
                                    ("failed", "Failed"),
                                ],
                                default="received",
                                max_length=16,
                            ),
                        ),
                        ("error", models.TextField(blank=True)),
                        ("received_at", models.DateTimeField(auto_now_add=True)),
                        ("handled_at", models.DateTimeField(blank=True, null=True)),
                        ("lease_until", models.DateTimeField(blank=True, null=True)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        (
                            "reply_ts",
                            models.CharField(
                                blank=True,
                                help_text="The placeholder message a later attempt updates.",
                                max_length=32,
                            ),
                        ),
                    ],
                    options={"db_table": "assistant_slackeventreceipt"},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
