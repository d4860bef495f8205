from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0004_conversation_read_permission"),
    ]

    operations = [
        migrations.AddField(
            model_name="slackeventreceipt",
            name="lease_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="slackeventreceipt",
            name="attempts",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="slackeventreceipt",
            name="reply_ts",
            field=models.CharField(
                blank=True,
                help_text="The placeholder message a later attempt updates.",
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="slackeventreceipt",
            name="status",
            field=models.CharField(
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
    ]
