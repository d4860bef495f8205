"""Slack's webhooks. Each request is verified on its raw body, recorded once, and answered
within Slack's 3 seconds; the work happens in a Celery task enqueued on commit."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from slack_sdk.signature import SignatureVerifier

from assistant.slack import linking, services
from assistant.slack.models import SlackEventReceipt

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def slack_door(view):
    """Live only when Slack is configured; signature checked before anything else."""

    @login_not_required
    @csrf_exempt
    @require_POST
    def wrapped(request):
        if not (settings.SLACK_SIGNING_SECRET and settings.SLACK_BOT_TOKEN):
            raise Http404("Slack is not configured.")
        body = request.body
        if len(body) > MAX_BODY:
            return HttpResponse(status=413)
        verifier = SignatureVerifier(settings.SLACK_SIGNING_SECRET)
        if not verifier.is_valid(
            body,
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
        ):
            return HttpResponse("invalid signature", status=401)
        return view(request, body)

    return wrapped


def _form(body: bytes) -> dict:
    return {key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}


@slack_door
def events(request, body):
    try:
        payload = json.loads(body)
    except ValueError:
        return HttpResponse("malformed body", status=400)
    if not isinstance(payload, dict):
        return HttpResponse("malformed body", status=400)
    if payload.get("type") == "url_verification":
        return JsonResponse({"challenge": str(payload.get("challenge", ""))})
    if payload.get("type") != "event_callback" or not isinstance(payload.get("event"), dict):
        return HttpResponse(status=200)  # acknowledged, nothing to do
    event = payload["event"]
    if not _is_question(event):
        return HttpResponse(status=200)
    key = payload.get("event_id") or f"{event.get('channel')}:{event.get('ts')}"
    receipt = services.receipt_record(
        key=f"event:{key}", kind=SlackEventReceipt.Kind.EVENT, payload=payload
    )
    if receipt is not None:
        services.receipt_enqueue(receipt)
    return HttpResponse(status=200)


def _is_question(event: dict) -> bool:
    # Never answer bots (ourselves included): that way lies an infinite conversation.
    if event.get("bot_id") or event.get("subtype") or not event.get("user"):
        return False
    if (
        not isinstance(event.get("text", ""), str)
        or not event.get("channel")
        or not event.get("ts")
    ):
        return False
    if event.get("type") == "app_mention":
        return True
    return event.get("type") == "message" and event.get("channel_type") == "im"


@slack_door
def commands(request, body):
    form = _form(body)
    if not form.get("user_id") or not form.get("response_url") or not form.get("trigger_id"):
        return HttpResponse("malformed command", status=400)
    receipt = services.receipt_record(
        key=f"command:{form['trigger_id']}", kind=SlackEventReceipt.Kind.COMMAND, payload=form
    )
    if receipt is not None:
        services.receipt_enqueue(receipt)
    return JsonResponse(
        {"response_type": "ephemeral", "text": "Looking through the company knowledge…"}
    )


@slack_door
def interactions(request, body):
    try:
        payload = json.loads(_form(body).get("payload", ""))
    except ValueError:
        return HttpResponse("malformed payload", status=400)
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return HttpResponse(status=200)
    user = payload.get("user") or {}
    team = (payload.get("team") or {}).get("id", "")
    for action in payload.get("actions") or []:
        if action.get("action_id") in ("feedback_up", "feedback_down") and isinstance(
            action.get("value"), str
        ):
            services.feedback_from_button(
                team_id=team, slack_user_id=user.get("id", ""), value=action["value"]
            )
    return HttpResponse(status=200)


@require_http_methods(["GET", "POST"])
def link(request, token: str):
    """The one-time link the bot sends: the signed-in person confirms (POST, with CSRF) that the
    Slack account is theirs. Sign-in is required by LoginRequiredMiddleware."""
    try:
        identity = linking.identity_for_link(token=token)
        if request.method == "POST":
            identity = linking.link_confirm(user=request.user, token=token)
            return render(request, "slack/link.html", {"state": "done", "identity": identity})
    except linking.LinkError as exc:
        return render(
            request,
            "slack/link.html",
            {"state": "error", "message": exc.message},
            status=exc.status,
        )
    return render(request, "slack/link.html", {"state": "confirm", "identity": identity})
