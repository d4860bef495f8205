import pytest
from django.test import override_settings


@pytest.mark.django_db
def test_healthz_is_200_with_every_part_named_when_all_are_up(client, celery_worker):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "pgvector", "redis", "worker"}
    assert body["checks"]["pgvector"]["detail"].startswith("0.8")
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
def test_healthz_is_503_naming_redis_when_redis_is_unreachable(client, celery_worker):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["checks"]["redis"]["ok"] is False
    assert "Connection" in body["checks"]["redis"]["detail"]
    assert body["checks"]["database"]["ok"] is True


def test_healthz_needs_no_login_and_is_never_cached(client, db, celery_worker):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]


def test_metrics_speak_prometheus_text(client, db):
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "assistant_http_requests_total" in response.content.decode()


def test_metrics_require_the_token_when_one_is_configured(client, db):
    with override_settings(METRICS_TOKEN="s3cret"):
        assert client.get("/metrics").status_code == 403
        ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert ok.status_code == 200
