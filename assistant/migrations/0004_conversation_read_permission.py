from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0003_memory"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="conversation",
            options={
                "ordering": ["-updated_at"],
                "permissions": [
                    ("read_user_conversations", "Can read other users' conversations in the admin")
                ],
            },
        ),
    ]
