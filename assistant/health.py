"""Health of the parts the app needs. Each check returns a small result; none raises."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import redis
from django.conf import settings
from django.db import connection


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
    return CheckResult(name, ok, detail, round((time.perf_counter() - started) * 1000, 1))


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


def _worker() -> tuple[bool, str]:
    from assistant.celery import app

    replies = app.control.ping(timeout=1.0, limit=1)
    if not replies:
        return False, "no Celery worker answered within 1s"
    return True, f"{len(replies)} worker(s) answered"


CHECKS = {"database": _database, "pgvector": _pgvector, "redis": _redis, "worker": _worker}


def run_checks(names: list[str] | None = None) -> list[CheckResult]:
    return [_timed(name, CHECKS[name]) for name in (names or list(CHECKS))]


def as_json(results: list[CheckResult]) -> dict:
    return {
        "status": "ok" if all(r.ok for r in results) else "fail",
        "checks": {r.name: {k: v for k, v in asdict(r).items() if k != "name"} for r in results},
    }
