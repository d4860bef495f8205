from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """Retention, erasure and the personal data export: its commands, task, admin action and
    export page; the rows it deletes belong to the other apps."""

    name = "assistant.privacy"
    label = "privacy"
    verbose_name = "Privacy"
