"""Insights: the resolved groups of unanswered questions, and an index on messages by role and
time, so the per-day figures of a year read only the rows of their window."""

import django.db.models.deletion
import django.utils.timezone
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0011_message_learned_at"),
        ("knowledge", "0008_page_edges"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["role", "created_at"], name="message_role_time"),
        ),
        migrations.CreateModel(
            name="GapResolution",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("question", models.TextField(help_text="The group's representative question.")),
                ("question_count", models.PositiveIntegerField(default=0)),
                ("centroid", pgvector.django.vector.VectorField()),
                ("embedding_model", models.CharField(max_length=200)),
                (
                    "resolved_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                (
                    "resolved_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "source",
                    models.ForeignKey(
                        blank=True,
                        help_text="The source added to answer these questions, if any.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="knowledge.source",
                    ),
                ),
            ],
            options={"ordering": ["-resolved_at", "-id"]},
        ),
    ]
