from celery import shared_task
from django.core.cache import cache


@shared_task(name="assistant.echo", acks_late=True, soft_time_limit=10, time_limit=20)
def echo(key: str, value: str) -> None:
    """Diagnostics: proves the worker reads the broker and writes shared state (used by tests)."""
    cache.set(f"echo:{key}", value, timeout=60)


@shared_task(
    bind=True,
    name="assistant.after_turn",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=120,
    time_limit=150,
)
def after_turn(self, answer_id: str) -> None:
    """Learns from the turn and summarises long conversations (see assistant/memory/extraction.py).

    Delivered again after its worker died (``acks_late``), it finds the turn learned or takes
    over; while another worker is still at the turn it comes back after it (at most the time
    limit)."""
    from assistant.memory import extraction as memory_extraction

    try:
        memory_extraction.after_turn(answer_id=answer_id)
    except memory_extraction.TurnBusy:
        raise self.retry(countdown=5, max_retries=40) from None
