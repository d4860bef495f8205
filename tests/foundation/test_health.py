import pytest
from django.test import override_settings

from assistant.project import health

TOKEN = "s3cret"


@pytest.fixture(autouse=True)
def _no_remembered_worker_check():
    # The worker ping is remembered for a few seconds; each test asks afresh.
    health.worker_check.forget()
    yield
    health.worker_check.forget()


# The public body says only ok/failing per part (tests/security/test_info_leaks.py); the
# details below are what the operator sees with the metrics token.


@pytest.mark.django_db
@override_settings(METRICS_TOKEN=TOKEN)
def test_healthz_is_200_with_every_part_named_when_all_are_up(client, celery_worker):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"] == {
        name: {"ok": True} for name in ("database", "pgvector", "redis", "worker")
    }
    detailed = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    assert set(detailed["checks"]) == {"database", "pgvector", "redis", "worker"}
    assert detailed["checks"]["pgvector"]["detail"].startswith("0.8")
    assert all(check["ok"] for check in detailed["checks"].values())


@pytest.mark.django_db
@override_settings(METRICS_TOKEN=TOKEN)
def test_healthz_is_503_naming_redis_when_redis_is_unreachable(client, celery_worker):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = client.get("/healthz")
        detailed = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["checks"]["redis"] == {"ok": False}
    assert body["checks"]["database"] == {"ok": True}
    assert detailed["checks"]["redis"]["ok"] is False
    assert "Connection" in detailed["checks"]["redis"]["detail"]
    assert detailed["checks"]["database"]["ok"] is True


def test_healthz_needs_no_login_and_is_never_cached(client, db, celery_worker):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]


@override_settings(METRICS_PUBLIC=True)  # without a token, production serves them only when public
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
