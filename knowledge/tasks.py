"""Celery is just another door: tasks take ids and call one service."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from knowledge import embeddings, services, syncing

logger = logging.getLogger(__name__)

MAX_TRANSIENT_RETRIES = 6
DATABASE_RETRY_MAX_SECONDS = 60  # the back-off's ceiling while the database is away


# SQLSTATE classes and codes that mean the connection, not the statement, failed: connection
# exceptions (08), the server shutting down or not yet accepting (57P01-57P03), and a
# transaction PostgreSQL rolled back to resolve a conflict (40: deadlock, serialization).
_AWAY_CLASSES = ("08", "40")
_AWAY_CODES = ("57P01", "57P02", "57P03")


def database_away(exc: BaseException) -> bool:
    """Whether a database error means "try again later" rather than "this work fails": a lost
    or refused connection (psycopg gives those no SQLSTATE, or class 08), a server shutting
    down, or a deadlock. A statement timeout (57014), a full disk (53100) or a constraint is
    the work's own failure, and retrying it for ever would hide it."""
    if isinstance(exc, InterfaceError):
        return True  # Django's "connection already closed"
    cause = exc.__cause__ or exc
    state = getattr(cause, "sqlstate", None)
    if state is None:
        return True
    return state.startswith(_AWAY_CLASSES) or state in _AWAY_CODES


@shared_task(
    bind=True,
    name="knowledge.index_source",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    soft_time_limit=1800,
    time_limit=1900,
)
def index_source(self, source_id: int) -> None:
    _index_or_fail(self, source_id, lambda: services.source_index(source_id=source_id))


def _index_or_fail(task, source_id: int, work: Callable[[], object]) -> None:
    """Runs ``work`` (which may index the source) so that the source never stays "parsing" or
    "embedding": busy or transient trouble is tried again, anything else ends in ``failed``
    with the reason. Shared by indexing and a web page's scheduled check."""
    try:
        work()
    except services.SourceBusy:
        # Another worker has it; come back after it is done so a newer upload is not lost.
        raise task.retry(countdown=5, max_retries=720) from None
    except services.TransientIndexingError as exc:
        if task.request.retries >= MAX_TRANSIENT_RETRIES:
            services.source_mark_failed(
                source_id=source_id,
                message=f"Gave up after {MAX_TRANSIENT_RETRIES} retries: {exc}",
            )
            return
        countdown = min(600, settings.INDEXING_RETRY_BASE_SECONDS * 2**task.request.retries)
        logger.warning("indexing will retry", extra={"source_id": source_id, "in_s": countdown})
        raise task.retry(countdown=countdown, max_retries=None) from None
    except (OperationalError, InterfaceError) as exc:
        if not database_away(exc):
            # The database is there but refused the work (a statement timeout, a full disk):
            # retrying without limit would only repeat it. The source says why.
            logger.exception("indexing hit a database error", extra={"source_id": source_id})
            services.source_mark_failed(
                source_id=source_id,
                message="The database refused to store this document "
                f"({type(exc.__cause__ or exc).__name__}); the error was logged.",
            )
            return
        # The database went away (a restart, a failover, a dropped connection): nothing is
        # wrong with the document, and the failed state could not even be written. Retry with
        # back-off, without limit: the upload was accepted and must not be lost.
        close_old_connections()  # the next attempt connects afresh
        countdown = min(
            DATABASE_RETRY_MAX_SECONDS,
            settings.INDEXING_RETRY_BASE_SECONDS * 2 ** min(task.request.retries, 10),
        )
        logger.warning(
            "database unavailable; indexing will retry",
            extra={"source_id": source_id, "in_s": countdown, "error": str(exc)[:300]},
        )
        raise task.retry(countdown=countdown, max_retries=None) from None
    except embeddings.EmbeddingError as exc:
        services.source_mark_failed(source_id=source_id, message=str(exc))
    except SoftTimeLimitExceeded:
        services.source_mark_failed(
            source_id=source_id, message="Indexing took too long and was stopped."
        )
    except Exception:
        # A failing document must never take the worker down or stay "parsing" forever.
        logger.exception("indexing crashed", extra={"source_id": source_id})
        services.source_mark_failed(
            source_id=source_id, message="Indexing failed unexpectedly; the error was logged."
        )


# --- keeping web pages in sync (knowledge.syncing) -------------------------------------------


@shared_task(name="knowledge.refresh_due", acks_late=True, reject_on_worker_lost=True)
def refresh_due() -> None:
    """The beat schedule's tick: queue a check for each web page and sitemap that is due."""
    syncing.refresh_due()


@shared_task(
    bind=True,
    name="knowledge.refresh_source",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    soft_time_limit=1800,
    time_limit=1900,
)
def refresh_source(self, source_id: int) -> None:
    # A changed page is indexed within the check: its failures end as indexing's do.
    _index_or_fail(self, source_id, lambda: syncing.source_refresh(source_id=source_id))


@shared_task(
    name="knowledge.refresh_sitemap",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=600,
    time_limit=660,
)
def refresh_sitemap(sitemap_id: int) -> None:
    try:
        syncing.sitemap_refresh(sitemap_id=sitemap_id)
    except SoftTimeLimitExceeded:
        # Uncaught, nothing would be recorded and the expired claim would queue it again
        # and again: the sitemap says why, and comes due after a back-off.
        logger.warning(
            "sitemap reading stopped at its time limit", extra={"sitemap_id": sitemap_id}
        )
        syncing.sitemap_reading_stopped(sitemap_id=sitemap_id)
