"""Background work is enqueued here: by task name, after the current transaction commits.

Services never import the tasks that call them (a task imports its service; the service
naming the task by string keeps the import graph acyclic), and nothing is enqueued for rows a
rolled-back transaction never wrote. The task is looked up in the Celery app's registry, so
eager mode (tests) still runs it in this process.

The broker can be unreachable when the commit happens (Redis restarting). The rows are saved
by then, so the caller must not fail: the error is logged and counted, and the work is picked
up again by a sweeper that looks for rows still waiting for their task (for sources:
``knowledge.services.sources_requeue_stuck``, run by every worker).
"""

from __future__ import annotations

import logging
import threading

from celery import current_app
from django.db import transaction
from prometheus_client import Counter

logger = logging.getLogger(__name__)

ENQUEUE_FAILURES = Counter(
    "assistant_enqueue_failures_total",
    "Tasks that could not be handed to the broker after their transaction committed.",
    ["task"],
)

# Answers finishing at once in a fresh web process look their task up from several threads:
# while one imports the task modules, the others must wait for it, not find them half-imported.
_importing = threading.Lock()


def _task(name: str):
    try:
        return current_app.tasks[name]
    except KeyError:  # the worker imports task modules at start; a web process on first use
        with _importing:
            current_app.loader.import_default_modules()
        return current_app.tasks[name]


def _send(task, args: tuple) -> None:
    try:
        task.delay(*args)
    except Exception:
        # Committed but not queued: the request that saved the rows still succeeds, and the
        # sweeper re-enqueues the work once the broker is back.
        ENQUEUE_FAILURES.labels(task=task.name).inc()
        logger.exception(
            "could not enqueue a task after commit; it will be re-enqueued by the sweeper",
            extra={"task": task.name, "task_args": [str(a) for a in args]},
        )


def enqueue_on_commit(task_name: str, *args) -> None:
    """Runs ``task_name(*args)`` on a worker once the current transaction commits (at once
    outside a transaction). An unknown name fails here, not on the worker; a broker that is
    down when the transaction commits is logged, never raised (the rows are already saved)."""
    task = _task(task_name)
    # robust: even an error _send does not expect must not fail a request whose rows committed.
    transaction.on_commit(lambda: _send(task, args), robust=True)


def waiting_count(task_name: str) -> int:
    """How many messages wait on the broker in the queue ``task_name`` is routed to (not those
    a worker already took). Raises when the broker cannot be reached (one quick retry)."""
    queue = current_app.amqp.router.route({}, task_name)["queue"].name
    with current_app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1)
        try:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
        except conn.channel_errors:  # never declared, or emptied and gone: nothing waits
            return 0
