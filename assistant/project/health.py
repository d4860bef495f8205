"""Health of the parts the app needs. Each check returns a small result; none raises.

What a check found (versions, host names, exception text) is for operators: it goes to the
log, and into the response only for a caller allowed to see details (see views.healthz).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass

import redis
from django.conf import settings
from django.db import connection
from prometheus_client import Counter

logger = logging.getLogger("assistant.health")

WORKER_BROADCASTS = Counter(
    "assistant_health_worker_broadcasts_total",
    "Celery ping broadcasts sent by the health check (cached between calls)",
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    ms: float


def _timed(name: str, check) -> CheckResult:
    started = time.perf_counter()
    try:
        ok, detail = check()
    except Exception as exc:  # a health check reports failures, it never raises them
        ok, detail = False, f"{type(exc).__name__}: {exc}"[:300]
    result = CheckResult(name, ok, detail, round((time.perf_counter() - started) * 1000, 1))
    if not ok:
        logger.warning("health check failed", extra={"check": name, "detail": detail})
    return result


def _database() -> tuple[bool, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version')")
        return True, f"PostgreSQL {cursor.fetchone()[0]}"


def _pgvector() -> tuple[bool, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    return (True, row[0]) if row else (False, "the vector extension is not installed")


def _redis() -> tuple[bool, str]:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
        return True, "PONG"
    finally:
        client.close()


def _ping_workers() -> tuple[bool, str]:
    from assistant.project.celery import app

    WORKER_BROADCASTS.inc()
    replies = app.control.ping(timeout=1.0, limit=1)
    if not replies:
        return False, "no Celery worker answered within 1s"
    return True, f"{len(replies)} worker(s) answered"


class _WorkerCheck:
    """The worker ping, remembered for HEALTH_WORKER_CHECK_SECONDS in this process.

    A ping is a broadcast every worker must answer; a load balancer (or anyone) calling
    /healthz in a loop must not turn into a broadcast per call. Concurrent callers wait for
    the one ping in flight instead of sending their own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._result: tuple[bool, str] | None = None
        self._expires = 0.0

    def __call__(self) -> tuple[bool, str]:
        with self._lock:
            if self._result is None or time.monotonic() >= self._expires:
                try:
                    self._result = _ping_workers()
                except Exception as exc:  # remembered too, so it is not retried on every call
                    self._result = (False, f"{type(exc).__name__}: {exc}"[:300])
                self._expires = time.monotonic() + settings.HEALTH_WORKER_CHECK_SECONDS
            return self._result

    def forget(self) -> None:
        """Drops the remembered answer, so the next call pings again."""
        with self._lock:
            self._result = None


worker_check = _WorkerCheck()

CHECKS = {"database": _database, "pgvector": _pgvector, "redis": _redis, "worker": worker_check}


def run_checks(names: list[str] | None = None) -> list[CheckResult]:
    return [_timed(name, CHECKS[name]) for name in (names or list(CHECKS))]


def as_json(results: list[CheckResult], *, details: bool = False) -> dict:
    """The health report: only ok or not per part, unless ``details`` is allowed."""
    return {
        "status": "ok" if all(r.ok for r in results) else "fail",
        "checks": {
            r.name: {k: v for k, v in asdict(r).items() if k != "name"} if details else {"ok": r.ok}
            for r in results
        },
    }
