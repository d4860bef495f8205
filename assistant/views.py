import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from accounts import views as account_views
from assistant import health
from knowledge.selectors import collections_readable_by


@login_not_required
@never_cache
@require_GET
def healthz(request):
    """Load-balancer health: 200 when every part is up, 503 naming the failing parts."""
    results = health.run_checks()
    body = health.as_json(results)
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)


@login_not_required
@never_cache
@require_GET
def metrics(request):
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponseForbidden("metrics need the bearer token\n")
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def home(request, conversation_id=None):
    """The chat page; the conversation (if any) is loaded by the page over the API."""
    return render(
        request,
        "assistant/chat.html",
        {
            "conversation_id": str(conversation_id) if conversation_id else "",
            "max_question_chars": settings.CHAT_MAX_QUESTION_CHARS,
        },
    )


def account(request):
    """The account page (accounts' view) with the knowledge this person can read."""
    return account_views.account(
        request,
        extra_context={"readable_collections": collections_readable_by(request.user).order_by("name")},
    )
