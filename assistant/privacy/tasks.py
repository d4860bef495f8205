from celery import shared_task

from assistant.privacy.retention import retention_apply as apply_policy


@shared_task(
    name="privacy.retention_apply",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=1800,
    time_limit=1860,
)
def retention_apply() -> dict:
    """The daily run of the retention policy (CELERY_BEAT_SCHEDULE). Safe twice: a second run
    finds nothing older, and two at once are kept apart by an advisory lock. Cut short by the
    time limit, it leaves whole batches done, and the next day's run carries on."""
    return apply_policy().counts()
