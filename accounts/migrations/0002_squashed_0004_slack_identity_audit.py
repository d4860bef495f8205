"""SlackIdentity (0002, and the linking fields 0004 added) created in its final form; the audit
log of 0003 unchanged, its trigger included. A database that applied 0002 to 0004 only records
this migration; one at 0001 runs it."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

# Audit rows are evidence: once written, the database refuses to change them, whatever path
# (admin, shell, raw SQL from the app's role) tries, except to forget a deleted account's id.
# Deleting old rows stays possible for a retention policy.
NO_UPDATE = """
CREATE FUNCTION accounts_auditevent_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The one change allowed: forgetting who (a deleted account's id becomes NULL, by the
    -- foreign keys' SET NULL); the copied email and everything else stay as written.
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(NEW) - 'actor_id' - 'subject_id') = (to_jsonb(OLD) - 'actor_id' - 'subject_id')
       AND (NEW.actor_id IS NULL OR NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id)
       AND (NEW.subject_id IS NULL OR NEW.subject_id IS NOT DISTINCT FROM OLD.subject_id) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events cannot be changed' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER auditevent_no_update BEFORE UPDATE ON accounts_auditevent
    FOR EACH ROW EXECUTE FUNCTION accounts_auditevent_immutable();
"""
NO_UPDATE_REVERSE = """
DROP TRIGGER auditevent_no_update ON accounts_auditevent;
DROP FUNCTION accounts_auditevent_immutable();
"""


class Migration(migrations.Migration):
    replaces = [
        ("accounts", "0002_slackidentity"),
        ("accounts", "0003_auditevent"),
        ("accounts", "0004_slackidentity_linking"),
    ]

    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="SlackIdentity",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("team_id", models.CharField(max_length=32)),
                ("slack_user_id", models.CharField(max_length=32)),
                ("email", models.EmailField(blank=True, max_length=254)),
                ("display_name", models.CharField(blank=True, max_length=200)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="slack_identities",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("linked_at", models.DateTimeField(blank=True, null=True)),
                (
                    "linked_how",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("email", "Confirmed email from Slack"),
                            ("link", "Signed in through a link"),
                            ("provisional", "Provisional public-only account"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "link_nonce",
                    models.CharField(
                        blank=True,
                        help_text="The one link that may still bind it; emptied when used.",
                        max_length=64,
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("team_id", "slack_user_id"), name="slack_identity_unique"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                (
                    "actor_email",
                    models.CharField(
                        blank=True, help_text="Kept if the actor is deleted.", max_length=254
                    ),
                ),
                (
                    "action",
                    models.CharField(
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
                        ],
                        db_index=True,
                        max_length=40,
                    ),
                ),
                ("target_type", models.CharField(blank=True, max_length=60)),
                ("target_id", models.CharField(blank=True, max_length=64)),
                ("target_repr", models.CharField(blank=True, max_length=300)),
                ("detail", models.JSONField(blank=True, default=dict)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        help_text="Who did it (empty: the system, e.g. a sign-in or a task).",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "subject",
                    models.ForeignKey(
                        blank=True,
                        help_text="The person whose data or rights it was about, when there is one.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "indexes": [models.Index(fields=["target_type", "target_id"], name="audit_target")],
            },
        ),
        migrations.RunSQL(NO_UPDATE, reverse_sql=NO_UPDATE_REVERSE),
    ]
