"""A source's path within a folder mirrored by ``manage.py sync`` (blank for every other source),
unique within its collection."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0009_url_refresh_and_sitemaps"),
    ]

    operations = [
        migrations.AddField(
            model_name="source",
            name="folder_path",
            field=models.CharField(blank=True, default="", max_length=300),
        ),
        migrations.AddConstraint(
            model_name="source",
            constraint=models.UniqueConstraint(
                condition=models.Q(("folder_path", ""), _negated=True),
                fields=("collection", "folder_path"),
                name="source_unique_folder_path",
            ),
        ),
    ]
