"""The OpenAI-compatible door: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Async views: a streamed answer is a ``StreamingHttpResponse`` over the runner's async iterator,
so Daphne sends each chunk as it comes and Django cancels the iterator when the client hangs up.
Every refusal is in OpenAI's error shape (``protocol.ApiError``); a refused token gets the
token core's JSON 401 (``knowledge.tokens.unauthorized_response``), never a sign-in redirect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from accounts.tokens import contains_token
from assistant import llm, services
from assistant.api_v1 import protocol, runner
from assistant.api_v1.protocol import ApiError
from assistant.api_v1.services import api_question_ask
from assistant.project.threads import db
from knowledge.tokens import (
    QUERY_TOKEN_PARAMS,
    TokenAuth,
    TokenError,
    aauthenticate,
    unauthorized_response,
)

View = Callable[..., Awaitable[HttpResponse]]


def _error(error: ApiError) -> JsonResponse:
    response = JsonResponse(error.body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def token_door(view: View) -> View:
    """An async view reached with a personal access token only (the async twin of
    ``knowledge.tokens.token_required``, same rules): the view gets the ``TokenAuth``; an
    ``ApiError`` it raises becomes OpenAI's error response. CSRF-exempt, as no cookie
    authenticates these requests."""

    @login_not_required
    @csrf_exempt
    @wraps(view)
    async def door(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if any(key in request.GET for key in QUERY_TOKEN_PARAMS) or contains_token(query):
            return _error(
                ApiError(
                    400,
                    "Tokens are accepted only in the 'Authorization: Bearer' header, never in "
                    "the address. Revoke this token: addresses are logged.",
                    code="token_in_query",
                )
            )
        try:
            auth = await aauthenticate(request.headers.get("Authorization"))
        except TokenError as error:
            return unauthorized_response(error)
        request.token_auth = auth
        request.user = auth.user
        try:
            return await view(request, auth, *args, **kwargs)
        except ApiError as error:
            return _error(error)

    return door


def _method(request: HttpRequest, allowed: str) -> None:
    if request.method != allowed:
        raise ApiError(
            405,
            f"Use {allowed} here.",
            code="method_not_allowed",
            headers={"Allow": allowed},
        )


def _model() -> dict:
    return {
        "id": protocol.MODEL_ID,
        "object": "model",
        "created": protocol.MODEL_CREATED,
        "owned_by": "organization",
        "description": protocol.MODEL_DESCRIPTION,
    }


@token_door
async def models(request: HttpRequest, auth: TokenAuth) -> HttpResponse:
    _method(request, "GET")
    return JsonResponse({"object": "list", "data": [_model()]})


@token_door
async def model_detail(request: HttpRequest, auth: TokenAuth, model: str) -> HttpResponse:
    _method(request, "GET")
    if model != protocol.MODEL_ID:
        raise ApiError(
            404, f"There is no model called {model[:100]!r} here.", code="model_not_found"
        )
    return JsonResponse(_model())


def _body(request: HttpRequest) -> bytes:
    """The body, refused over ``MAX_BODY_BYTES`` by its declared length before anything reads
    it, and by what was actually sent (a missing or lying Content-Length) before parsing."""
    limit = protocol.MAX_BODY_BYTES
    too_big = ApiError(
        413,
        f"The request is larger than the limit of {limit // 1024} KiB.",
        code="request_too_large",
    )
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not (declared.isascii() and declared.isdigit()) or int(declared) > limit:
        raise too_big
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise too_big
    return raw


def _link_for(request: HttpRequest) -> runner.LinkFor:
    def link(source: dict) -> str:
        path = reverse("knowledge:source_detail", args=[source["source_id"]])
        chunk = source.get("chunk_id")
        return request.build_absolute_uri(f"{path}?chunk={chunk}#chunk-{chunk}")

    return link


async def _question(auth: TokenAuth, chat: protocol.ChatRequest):
    try:
        return await db(api_question_ask)(
            user=auth.user,
            conversation_id=chat.conversation_id,
            text=chat.question,
            earlier=chat.earlier,
        )
    except ObjectDoesNotExist:
        raise protocol.not_found() from None
    except services.RateLimited as exc:
        raise ApiError(
            429,
            str(exc),
            code="rate_limited",
            kind="rate_limit_error",
            headers={"Retry-After": "60"},
        ) from None
    except services.Busy as exc:
        raise ApiError(409, str(exc), code="conversation_busy") from None
    except services.ChatError as exc:
        raise ApiError(400, str(exc), code="refused") from None


@token_door
async def chat_completions(request: HttpRequest, auth: TokenAuth) -> HttpResponse:
    _method(request, "POST")
    chat = protocol.parse_chat_request(
        _body(request),
        max_question_chars=settings.CHAT_MAX_QUESTION_CHARS,
        header_conversation_id=request.headers.get("X-Conversation-Id"),
    )
    question = await _question(auth, chat)
    config = llm.LLMConfig.from_settings()
    # The operator's LLM_MAX_TOKENS is the ceiling: a client may ask for less, never more.
    max_tokens = min(chat.max_tokens or config.max_tokens, config.max_tokens)
    temperature = config.temperature if chat.temperature is None else chat.temperature
    config = dataclasses.replace(config, max_tokens=max_tokens, temperature=temperature)
    run = runner.start(
        user=auth.user,
        question=question,
        # The token's whole scope, never None (None would mean all its owner reads).
        collection_ids=sorted(auth.collection_ids),
        config=config,
        claimed=chat.conversation_id is not None,
    )
    headers = {"X-Conversation-Id": run.conversation_id, "Cache-Control": "no-store"}
    if chat.stream:
        stream = runner.sse(
            run,
            max_tokens=max_tokens,
            include_usage=chat.include_usage,
            link_for=_link_for(request),
        )
        # X-Accel-Buffering: a proxy (nginx) must pass each chunk on, not gather the answer.
        headers["X-Accel-Buffering"] = "no"
        return StreamingHttpResponse(stream, content_type="text/event-stream", headers=headers)
    body = await runner.complete(run, max_tokens=max_tokens, link_for=_link_for(request))
    return JsonResponse(body, headers=headers)


@token_door
async def not_found(request: HttpRequest, auth: TokenAuth, rest: str = "") -> HttpResponse:
    raise ApiError(
        404,
        "Not found: this API offers GET /v1/models and POST /v1/chat/completions.",
        code="not_found",
    )
