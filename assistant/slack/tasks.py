from celery import shared_task

from assistant.slack import services


@shared_task(
    bind=True,
    name="assistant.slack.answer",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=300,
    time_limit=330,
    max_retries=10,
)
def answer_in_slack(self, receipt_id: int) -> None:
    try:
        services.handle_receipt(receipt_id=receipt_id)
    except services.LeaseHeld as held:
        # A redelivery while another run holds the lease: that run may have died with its
        # worker, so look again once the lease has run out instead of dropping the question.
        raise self.retry(countdown=min(held.retry_in + 1, 600)) from None
