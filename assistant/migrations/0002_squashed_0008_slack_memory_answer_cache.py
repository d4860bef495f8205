"""0002 to 0008 with SlackEventReceipt left out of this app's state.

Those migrations created SlackEventReceipt here (0002), gave it a lease (0005), then handed it
to the Slack app (0008 here, ``slack`` 0001), which took the model over the same table. In this
squash the model never enters this app's state: its table is created directly in its final
shape, and ``slack`` 0001 (which depends on 0008, so on this migration) adds the model over it.
Everything else is 0002 to 0007 unchanged, in order (the columns keep their order).

A database that applied 0002 to 0008 only records this migration; one at 0001 runs it.
"""

import django.db.models.deletion
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    replaces = [
        ("assistant", "0002_slackeventreceipt_conversation_slack_channel_and_more"),
        ("assistant", "0003_memory"),
        ("assistant", "0004_conversation_read_permission"),
        ("assistant", "0005_slackeventreceipt_lease"),
        ("assistant", "0006_message_unsupported"),
        ("assistant", "0007_answer_cache"),
        ("assistant", "0008_slackeventreceipt_moves_to_slack"),
    ]

    dependencies = [
        ("assistant", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The table of slack.SlackEventReceipt (db_table keeps this app's name), created as
        # 0002 + 0005 left it; the model itself lives in the Slack app's state only.
        migrations.SeparateDatabaseAndState(
            database_operations=[
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
            state_operations=[],
        ),
        migrations.AddField(
            model_name="conversation",
            name="slack_channel",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name="conversation",
            name="slack_team",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name="conversation",
            name="slack_thread_ts",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddConstraint(
            model_name="conversation",
            constraint=models.UniqueConstraint(
                condition=models.Q(("slack_thread_ts", ""), _negated=True),
                fields=("slack_team", "slack_channel", "slack_thread_ts"),
                name="conversation_unique_slack_thread",
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="remember",
            field=models.BooleanField(
                default=True,
                help_text="Off: nothing from this conversation goes into the user's memory.",
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="summary",
            field=models.TextField(
                blank=True, help_text="Older turns, summarised for long conversations."
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="summary_until",
            field=models.DateTimeField(
                blank=True,
                help_text="Messages up to this time are covered by the summary.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="memory_used",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="The memory items given to the model: [{id, text}].",
            ),
        ),
        migrations.CreateModel(
            name="MemorySettings",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "paused",
                    models.BooleanField(
                        default=False,
                        help_text="Paused: nothing new is remembered; nothing is used.",
                    ),
                ),
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memory_settings",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="MemoryItem",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("text", models.CharField(max_length=500)),
                ("embedding", pgvector.django.vector.VectorField(dimensions=384)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memory_items",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "source_message",
                    models.ForeignKey(
                        blank=True,
                        help_text="The message it was learned from.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="assistant.message",
                    ),
                ),
            ],
            options={
                "ordering": ["-updated_at"],
                "permissions": [("read_user_memory", "Can read other users' memory in the admin")],
                "indexes": [
                    models.Index(fields=["owner", "-updated_at"], name="memory_owner_recent")
                ],
            },
        ),
        migrations.AlterModelOptions(
            name="conversation",
            options={
                "ordering": ["-updated_at"],
                "permissions": [
                    ("read_user_conversations", "Can read other users' conversations in the admin")
                ],
            },
        ),
        migrations.AddField(
            model_name="message",
            name="unsupported",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Cited sentences their passages do not support: [{sentence, numbers, reason}].",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="cached_from",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="assistant.message",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="from_cache",
            field=models.BooleanField(default=False),
        ),
        migrations.CreateModel(
            name="AnswerCacheEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=64, unique=True)),
                ("hits", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(db_index=True)),
                ("last_hit_at", models.DateTimeField(blank=True, null=True)),
                (
                    "message",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="assistant.message",
                    ),
                ),
            ],
        ),
    ]
