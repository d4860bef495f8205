from django.apps import AppConfig


class SlackConfig(AppConfig):
    """Slack as its own app: its webhooks, the task that answers, and the deliveries it keeps."""

    name = "assistant.slack"
    label = "slack"
    verbose_name = "Slack"
    default_auto_field = "django.db.models.BigAutoField"
