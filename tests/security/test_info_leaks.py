"""What the operational endpoints tell strangers, and what they let strangers cost us.

/metrics and /healthz need no sign-in (a load balancer and Prometheus call them), so they must
not reveal versions, host names or errors to anyone who asks, must not let a client grow the
metrics registry without bound, and must not turn a flood of calls into a flood of broadcasts.
Real Redis, PostgreSQL and Celery's real broadcast (observed at Redis itself).
"""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import override_settings
from prometheus_client import REGISTRY

from assistant.project import health

PRODUCTION_METRICS = {"DEBUG": False, "METRICS_TOKEN": "", "METRICS_PUBLIC": False}


@pytest.fixture(autouse=True)
def _no_remembered_worker_check():
    health.worker_check.forget()
    yield
    health.worker_check.forget()


def _requests_counted(method: str) -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "assistant_http_requests"
        for sample in metric.samples
        if sample.name == "assistant_http_requests_total" and sample.labels["method"] == method
    )


# --- /metrics -------------------------------------------------------------------------------


def test_made_up_http_methods_cannot_grow_the_metrics_registry(client, db):
    junk = [f"X{uuid.uuid4().hex[:12].upper()}" for _ in range(5)]
    other_before = _requests_counted("other")
    for method in junk:
        client.generic(method, "/healthz")
    assert all(_requests_counted(method) == 0 for method in junk)
    assert _requests_counted("other") == other_before + len(junk)
    client.get("/healthz")
    assert _requests_counted("GET") >= 1  # real methods keep their own series


@override_settings(**PRODUCTION_METRICS)
def test_metrics_are_refused_in_production_without_a_token_and_the_reply_says_what_to_set(
    client, db
):
    response = client.get("/metrics")
    assert response.status_code == 403
    assert b"METRICS_TOKEN" in response.content and b"METRICS_PUBLIC" in response.content
    assert b"assistant_http_requests_total" not in response.content


@override_settings(**{**PRODUCTION_METRICS, "METRICS_TOKEN": "s3cret-token"})
def test_metrics_in_production_need_the_exact_token(client, db):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-toke").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + "x" * 10_000).status_code == 403
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert ok.status_code == 200
    assert b"assistant_http_requests_total" in ok.content


@override_settings(**{**PRODUCTION_METRICS, "METRICS_PUBLIC": True})
def test_metrics_are_public_in_production_only_when_the_operator_says_so(client, db):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"assistant_http_requests_total" in response.content


# --- /healthz -------------------------------------------------------------------------------


def _body_text(response) -> str:
    return json.dumps(response.json())


def _assert_only_ok_per_part(body: dict) -> None:
    assert set(body) == {"status", "checks"}
    assert set(body["checks"]) == {"database", "pgvector", "redis", "worker"}
    assert all(check == {"ok": check["ok"]} for check in body["checks"].values()), body


@override_settings(HEALTH_WORKER_CHECK_SECONDS=60)
def test_healthz_tells_strangers_no_versions_hosts_or_errors(client, db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('server_version'), "
            "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
        )
        pg_version, vector_version = cursor.fetchone()

    # Redis unreachable (its error names the host and port); no worker is running either.
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    _assert_only_ok_per_part(body)
    assert body["checks"]["redis"] == {"ok": False} and body["checks"]["worker"] == {"ok": False}
    assert body["checks"]["database"] == {"ok": True}
    text = _body_text(response)
    for leak in (
        pg_version,
        vector_version,
        "PostgreSQL",
        "127.0.0.1",
        "Error",
        "Connection",
        "Celery",
        "worker(s)",
        "detail",
        "ms",
    ):
        assert leak not in text, f"{leak!r} in {text}"


@override_settings(HEALTH_WORKER_CHECK_SECONDS=60, METRICS_TOKEN="s3cret-token")
def test_healthz_details_are_for_the_metrics_token_or_staff_only(client, db, make_user):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        stranger = client.get("/healthz")
        member = make_user()
        client.force_login(member)
        signed_in = client.get("/healthz")
        client.logout()
        operator = client.get("/healthz", HTTP_AUTHORIZATION="Bearer s3cret-token")
        client.force_login(make_user(is_staff=True))
        staff = client.get("/healthz")
    for response in (stranger, signed_in):
        _assert_only_ok_per_part(response.json())
    for response in (operator, staff):
        checks = response.json()["checks"]
        assert checks["database"]["detail"].startswith("PostgreSQL")
        assert "Connection" in checks["redis"]["detail"]


def _redis_publishes() -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get("cmdstat_publish", {}).get("calls", 0))


@override_settings(HEALTH_WORKER_CHECK_SECONDS=60)
def test_a_flood_of_healthz_calls_sends_at_most_one_worker_broadcast(client, db):
    before = _redis_publishes()
    first = client.get("/healthz")
    after_first = _redis_publishes()
    # Celery's ping is a PUBLISH on the broker's pidbox channel: the first call sends one, which
    # shows this measurement sees it.
    assert after_first - before == 1
    for _ in range(19):
        assert client.get("/healthz").status_code == first.status_code
    assert _redis_publishes() - after_first == 0
