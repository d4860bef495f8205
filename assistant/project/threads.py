"""The one way async code (the pipeline, the socket) calls the ORM."""

from __future__ import annotations

from channels.db import database_sync_to_async


def db(fn):
    """Runs a self-contained ORM call in the thread pool.

    Not thread-sensitive: with the default, every answer in the process would queue on one
    thread, and time to first token would grow with the number of people asking at once
    (measured: it doubled at 10 concurrent questions). Each call opens and commits its own
    transaction, so no thread affinity is needed; stale connections are closed before and
    after as in a request.
    """
    return database_sync_to_async(fn, thread_sensitive=False)
