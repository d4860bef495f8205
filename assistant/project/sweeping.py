"""The sweep every Celery worker runs on a timer: work whose task the broker lost is queued again.

A task is enqueued after its rows commit (``tasking.enqueue_on_commit``). If the broker is down
at that moment, or restarts without persistence, the rows wait for a task that will never come.
No beat process is needed for this: every worker sweeps (at start, then every
``WORKER_SWEEP_SECONDS``). Sources are claimed as they are re-queued, so several workers
sweeping together queue each once; a Slack question queued twice is still answered once (its
runs take a lease on it). The sweep tolerates the broker or the database being
down: it logs and tries again on the next tick.
"""

from __future__ import annotations

import logging

from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)


def sweep() -> dict[str, list[int]]:
    """One pass: re-queues the sources, the Slack questions and the after-turn work (memory
    learning, summaries) that lost their task; returns their ids (``{"sources": [...],
    "slack_receipts": [...], "after_turns": [...]}``). Each kind is swept on its own:
    one failing does not stop the other."""
    from assistant.memory.extraction import after_turns_requeue_stuck
    from assistant.slack.services import receipts_requeue_stuck
    from knowledge.services import sources_requeue_stuck

    close_old_connections()  # the timer's thread keeps its connection between ticks
    swept: dict[str, list[int]] = {}
    for kind, requeue, after in (
        ("sources", sources_requeue_stuck, settings.INDEXING_REQUEUE_AFTER_SECONDS),
        ("slack_receipts", receipts_requeue_stuck, settings.SLACK_REQUEUE_AFTER_SECONDS),
        ("after_turns", after_turns_requeue_stuck, settings.AFTER_TURN_REQUEUE_AFTER_SECONDS),
    ):
        try:
            swept[kind] = requeue(older_than_seconds=after)
        except Exception:  # broker or database unreachable: the next tick tries again
            logger.warning(
                "the sweep for lost %s failed; it runs again shortly", kind, exc_info=True
            )
            swept[kind] = []
    return swept


class Sweeper(bootsteps.StartStopStep):
    """Runs :func:`sweep` on the worker's own timer (added in ``project/celery.py``)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.timer_ref = None

    def start(self, worker) -> None:
        worker.timer.call_after(0.1, sweep)  # at start (and so after a restart) too
        self.timer_ref = worker.timer.call_repeatedly(settings.WORKER_SWEEP_SECONDS, sweep)

    def stop(self, worker) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
