"""Background work is enqueued here: by task name, after the current transaction commits.

Services never import the tasks that call them (a task imports its service; the service
naming the task by string keeps the import graph acyclic), and nothing is enqueued for rows a
rolled-back transaction never wrote. The task is looked up in the Celery app's registry, so
eager mode (tests) still runs it in this process.
"""

from __future__ import annotations

import threading

from celery import current_app
from django.db import transaction

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


def enqueue_on_commit(task_name: str, *args) -> None:
    """Runs ``task_name(*args)`` on a worker once the current transaction commits (at once
    outside a transaction). An unknown name fails here, not on the worker."""
    task = _task(task_name)
    transaction.on_commit(lambda: task.delay(*args))
