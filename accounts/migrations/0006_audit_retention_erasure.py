# Two audit actions: the retention policy ran, and a person was erased (assistant/privacy/).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_access_tokens"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("conversation.viewed", "Admin opened a person's conversation"),
                    ("memory.viewed", "Admin opened a person's memory"),
                    ("memory.deleted", "Admin deleted a person's memory item"),
                    ("collection.access_changed", "Collection access changed"),
                    ("collection.deleted", "Collection deleted"),
                    ("source.moved", "Source moved to another collection"),
                    ("source.deleted", "Source deleted"),
                    ("slack.linked", "Slack identity linked"),
                    ("slack.link_refused", "Slack identity not linked automatically"),
                    ("sso.groups_granted", "SSO granted groups"),
                    ("sso.groups_revoked", "SSO revoked groups"),
                    ("sso.flags_changed", "SSO changed staff or admin rights"),
                    ("token.created", "Personal access token created"),
                    ("token.revoked", "Personal access token revoked"),
                    ("retention.applied", "Retention policy applied"),
                    ("user.erased", "Person and their data erased"),
                ],
                db_index=True,
                max_length=40,
            ),
        ),
    ]
