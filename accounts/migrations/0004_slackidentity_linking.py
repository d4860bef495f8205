from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_auditevent"),
    ]

    operations = [
        migrations.AddField(
            model_name="slackidentity",
            name="linked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="slackidentity",
            name="linked_how",
            field=models.CharField(
                blank=True,
                choices=[
                    ("email", "Confirmed email from Slack"),
                    ("link", "Signed in through a link"),
                    ("provisional", "Provisional public-only account"),
                ],
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="slackidentity",
            name="link_nonce",
            field=models.CharField(
                blank=True,
                help_text="The one link that may still bind it; emptied when used.",
                max_length=64,
            ),
        ),
    ]
