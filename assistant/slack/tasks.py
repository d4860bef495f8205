from celery import shared_task

from assistant.slack import services


@shared_task(name="assistant.slack.answer", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=300, time_limit=330)
def answer_in_slack(receipt_id: int) -> None:
    services.handle_receipt(receipt_id=receipt_id)
