"""The operators' endpoints: ``/healthz`` for load balancers and ``/metrics`` for Prometheus."""

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from assistant.project import health


@login_not_required
@never_cache
@require_GET
def healthz(request):
    """Load-balancer health: 200 when every part is up, 503 otherwise, with only ok/failing
    per part. Versions, hosts and errors are in the log, and in the body for staff or a caller
    holding the metrics token (they would tell an attacker what to aim at)."""
    results = health.run_checks()
    body = health.as_json(results, details=_may_see_health_details(request))
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)


@login_not_required
@never_cache
@require_GET
def metrics(request):
    """Prometheus metrics: with METRICS_TOKEN set, only for its bearer; without one, only in
    DEBUG or when the operator says METRICS_PUBLIC=1 (they reveal traffic and internals)."""
    if settings.METRICS_TOKEN:
        if not _has_metrics_token(request):
            return HttpResponseForbidden("metrics need the bearer token\n")
    elif not (settings.DEBUG or settings.METRICS_PUBLIC):
        return HttpResponseForbidden(
            "metrics are off: set METRICS_TOKEN (and send it as a bearer token), "
            "or METRICS_PUBLIC=1 to serve them to anyone\n"
        )
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def _may_see_health_details(request) -> bool:
    if _has_metrics_token(request):
        return True
    try:  # reading the session needs the database, which may be the part that is down
        return request.user.is_active and request.user.is_staff
    except DatabaseError:
        return False


def _has_metrics_token(request) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return False
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.encode())
