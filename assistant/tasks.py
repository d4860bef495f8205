from celery import shared_task
from django.core.cache import cache


@shared_task(name="assistant.echo", acks_late=True, soft_time_limit=10, time_limit=20)
def echo(key: str, value: str) -> None:
    """Diagnostics: proves the worker reads the broker and writes shared state (used by tests)."""
    cache.set(f"echo:{key}", value, timeout=60)


from assistant.slack.tasks import answer_in_slack  # noqa: E402,F401  (registers the task)
