"""Page edges: the fingerprints of the lines at the edges of indexed HTML pages, from which
indexing tells a site's repeated furniture (``knowledge.parsing.furniture``)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0007_knowledge_version"),
    ]

    operations = [
        migrations.CreateModel(
            name="PageEdge",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("position", models.SmallIntegerField()),
                ("fingerprint", models.BigIntegerField(null=True)),
                ("content", models.BooleanField(default=False)),
                ("repeated", models.BooleanField(default=False)),
                (
                    "source",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="knowledge.source",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["fingerprint"], name="pageedge_fingerprint")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("source", "position"), name="pageedge_unique_position"
                    )
                ],
            },
        ),
    ]
