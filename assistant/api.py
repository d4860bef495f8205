"""The chat's HTTP door: JSON for the browser page (and any API client with a session)."""

from __future__ import annotations

import json

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from assistant import selectors, services
from assistant.answering import extractive
from assistant.models import Feedback, Message

LIST_LIMIT = 200


def _conversation_or_404(request, conversation_id):
    try:
        return selectors.conversation_get_for_user(
            user=request.user, conversation_id=conversation_id
        )
    except ObjectDoesNotExist:
        raise Http404("No such conversation.") from None


def _conversation_json(c) -> dict:
    return {**services.conversation_event(c), "remember": c.remember}


@require_GET
def conversation_list(request):
    conversations = selectors.conversations_of(request.user, query=request.GET.get("q", ""))
    return JsonResponse(
        {"conversations": [_conversation_json(c) for c in conversations[:LIST_LIMIT]]}
    )


@require_GET
def conversation_detail(request, conversation_id):
    conversation = _conversation_or_404(request, conversation_id)
    messages = list(selectors.visible_messages(conversation).prefetch_related("citations"))
    access = selectors.passage_access_for(user=request.user, messages=messages)
    feedback = {
        f.message_id: {"rating": f.rating, "comment": f.comment}
        for f in Feedback.objects.filter(message__in=messages, user=request.user)
    }
    versions = selectors.versions_of(conversation=conversation, messages=messages)
    return JsonResponse(
        {
            "conversation": _conversation_json(conversation),
            "messages": [
                {**_message_json(access, m, feedback.get(m.pk)), "versions": versions[m.pk]}
                for m in messages
            ],
        }
    )


def _unavailable(n) -> dict:
    """A passage the reader can no longer read keeps its number, and nothing else of it."""
    return {"n": n, "unavailable": True}


def _unsupported(message: Message, sources: list[dict]) -> list[dict]:
    """The citation check's marks on sentences citing passages the reader can still read.

    A mark says what a passage does not contain ("says 80, not found in source 2"): about a
    passage the reader lost access to, that is knowledge of text they may no longer read.
    """
    readable = {s.get("n") for s in sources if not s.get("unavailable")}
    return [
        u
        for u in message.unsupported
        if isinstance(u, dict) and u.get("numbers") and set(u["numbers"]) <= readable
    ]


def _message_json(access: selectors.PassageAccess, message: Message, feedback) -> dict:
    sources = [
        s
        if access.readable(s.get("source_id"), s.get("collection_id"))
        else _unavailable(s.get("n"))
        for s in message.sources
        if isinstance(s, dict)
    ]
    citations = [
        {
            "number": c.number,
            "chunk_id": c.chunk_id,
            "source_id": c.source_id,
            "title": c.document_title,
            "source_name": c.source_name,
            "url": c.source_url,
            "heading": c.heading,
            "page": c.page,
            "text": c.quote,
        }
        if access.readable(c.source_id, c.collection_id)
        else {"number": c.number, "unavailable": True}
        for c in message.citations.all()
    ]
    # An answer whose writer died shows as interrupted (it is stored so at the next question).
    stale = selectors.is_stale_stream(message)
    return {
        "id": str(message.pk),
        "role": message.role,
        "content": extractive.visible_content(message.model, message.content, sources),
        "status": Message.Status.FAILED if stale else message.status,
        "error": services.INTERRUPTED if stale else message.error,
        "sources": sources,
        "citations": citations,
        "unsupported": _unsupported(message, sources),
        "from_cache": message.from_cache,
        "extractive": extractive.is_extractive(message.model),
        "client_written": message.model == Message.CLIENT_WRITTEN,
        "feedback": feedback,
        "created_at": message.created_at.isoformat(),
        "memory_used": message.memory_used,
        "reply_to": str(message.reply_to_id) if message.reply_to_id else None,
        "timings": {
            "retrieval_ms": message.retrieval_ms,
            "first_token_ms": message.first_token_ms,
            "total_ms": message.total_ms,
            "model": message.model,
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
        },
    }


def _payload(request) -> dict:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return request.POST


@require_POST
def conversation_rename(request, conversation_id):
    conversation = _conversation_or_404(request, conversation_id)
    title = _payload(request).get("title")
    if not isinstance(title, str):
        return JsonResponse({"ok": False, "error": "A title is needed."}, status=400)
    try:
        services.conversation_rename(user=request.user, conversation=conversation, title=title)
    except services.ChatError as exc:
        return JsonResponse({"ok": False, "error": str(exc)}, status=400)
    return JsonResponse({"ok": True, "conversation": _conversation_json(conversation)})


@require_POST
def conversation_delete(request, conversation_id):
    conversation = _conversation_or_404(request, conversation_id)
    services.conversation_delete(user=request.user, conversation=conversation)
    return JsonResponse({"ok": True})


@require_POST
def conversation_remember(request, conversation_id):
    """The per-conversation memory switch: {"remember": false} keeps this chat out of memory."""
    conversation = _conversation_or_404(request, conversation_id)
    remember = _payload(request).get("remember")
    if remember not in (True, False, "1", "0", "true", "false"):
        return JsonResponse({"ok": False, "error": "remember must be true or false."}, status=400)
    value = remember in (True, "1", "true")
    services.conversation_set_remember(user=request.user, conversation=conversation, remember=value)
    return JsonResponse({"ok": True, "remember": value})
