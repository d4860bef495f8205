from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0005_slackeventreceipt_lease"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="unsupported",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Cited sentences their passages do not support: [{sentence, numbers, reason}].",
            ),
        ),
    ]
