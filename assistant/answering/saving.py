"""Saving a streaming answer through a short database outage (a restart, a failover).

The text being written lives in the pipeline's memory until the answer ends; the model needs
no database to go on writing it. So a checkpoint that finds the database away is skipped (the
next one, or the final save, writes the text), and the final save is retried with back-off for
up to ``SAVE_RETRY_SECONDS``. An answer that still cannot be saved keeps its last checkpoint
and its ``streaming`` status, and reads as interrupted, with the chat's offer to retry, once it
is stale (``selectors.is_stale_stream``), like an answer whose process died.
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.db import InterfaceError, OperationalError

from assistant import services
from assistant.models import Message
from assistant.project.threads import db

log = logging.getLogger(__name__)

# The errors of a database that is away (connection refused or dropped), as opposed to a
# statement the database refused, which a retry would not change.
UNAVAILABLE = (OperationalError, InterfaceError)
SAVE_RETRY_SECONDS = 30.0
FIRST_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 2.0


async def answer_checkpoint(*, message_id, content: str) -> bool:
    """Saves the text so far; False (and nothing raised) when the database is away."""
    try:
        await db(services.answer_checkpoint)(message_id=message_id, content=content)
    except UNAVAILABLE as exc:
        log.warning(
            "answer checkpoint skipped: the database is unavailable",
            extra={"message_id": str(message_id), "error": str(exc)[:300]},
        )
        return False
    return True


async def answer_finish(**kwargs) -> Message:
    """``services.answer_finish``, retried while the database is away, for up to
    ``SAVE_RETRY_SECONDS``; then the last error is raised. Safe to repeat: the service sets
    the answer's final state and replaces its citations."""
    deadline = time.monotonic() + SAVE_RETRY_SECONDS
    delay = FIRST_DELAY_SECONDS
    while True:
        try:
            return await db(services.answer_finish)(**kwargs)
        except UNAVAILABLE as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "saving the answer will retry: the database is unavailable",
                extra={"message_id": str(kwargs.get("message_id")), "error": str(exc)[:300]},
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY_SECONDS)
