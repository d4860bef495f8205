"""OpenAI's chat-completions shapes: reading a request, writing a response, chunk or error.

Pure functions and dataclasses (no database, no settings read here), so every refusal can be
tested on its own and the door stays a few lines. A refusal is an ``ApiError``, which carries
the HTTP status and OpenAI's error body (``{"error": {"message", "type", "param", "code"}}``).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

MODEL_ID = "assistant"
MODEL_DESCRIPTION = (
    "The company's knowledge assistant: answers from the documents you may read, with "
    "numbered citations ([n] in the text, details in the 'citations' field)."
)
# Created-at of the one model, fixed so /v1/models is the same on every call and process.
MODEL_CREATED = 1_767_225_600  # 2026-01-01

MAX_BODY_BYTES = 64 * 1024
# A request's messages: more is refused, never silently cut (a client that sends a whole
# archive should learn it). Of the earlier turns, the pipeline reads the latest HISTORY_TURNS.
MAX_MESSAGES = 200
# Our own instructions (the knowledge, the citing rules) apply; a client's system prompt is
# dropped rather than refused, since many clients always send one.
IGNORED_ROLES = frozenset({"system", "developer"})
TURN_ROLES = frozenset({"user", "assistant"})


class ApiError(Exception):
    """A refusal in OpenAI's error shape; ``message`` is written for people."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.kind = kind
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, code=self.code, param=self.param, kind=self.kind)


def error_body(
    message: str, *, code: str, param: str | None = None, kind: str = "invalid_request_error"
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def not_found(message: str = "No such conversation.") -> ApiError:
    # Missing and someone else's are the same answer: an id says nothing about other people.
    return ApiError(404, message, code="conversation_not_found", param="conversation_id")


@dataclass(frozen=True)
class ChatRequest:
    """What a chat-completions request asks, checked."""

    question: str
    # The client's earlier turns, oldest first, as (role, text) with role user or assistant.
    earlier: list[tuple[str, str]] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    conversation_id: str | None = None


def parse_chat_request(
    raw: bytes, *, max_question_chars: int, header_conversation_id: str | None = None
) -> ChatRequest:
    """The request in ``raw`` (the body's bytes, already known to be within MAX_BODY_BYTES).
    Unknown fields are ignored, as OpenAI's own clients add new ones over time; known fields
    of the wrong type or range are refused with the field named in ``param``."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(
            400, "The request body is not valid JSON.", code="invalid_json", param=None
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    _check_model(body.get("model"))
    question, earlier = _messages(body.get("messages"), max_question_chars)
    stream = _optional_bool(body, "stream") or False
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(
            400, "stream_options must be an object.", code="invalid_type", param="stream_options"
        )
    include_usage = bool(options and options.get("include_usage") is True)
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise ApiError(
            400, "Only one choice is given per request (n = 1).", code="invalid_value", param="n"
        )
    return ChatRequest(
        question=question,
        earlier=earlier,
        stream=stream,
        include_usage=include_usage,
        temperature=_temperature(body.get("temperature")),
        max_tokens=_max_tokens(body),
        conversation_id=_conversation_id(body.get("user"), header_conversation_id),
    )


def _check_model(model: Any) -> None:
    if not isinstance(model, str) or not model:
        raise ApiError(400, f'Name the model: "{MODEL_ID}".', code="missing_model", param="model")
    if model != MODEL_ID:
        raise ApiError(
            400,
            f'There is no model called {model[:100]!r} here; the only one is "{MODEL_ID}".',
            code="model_not_found",
            param="model",
        )


def _messages(messages: Any, max_question_chars: int) -> tuple[str, list[tuple[str, str]]]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "Send at least one message.", code="empty_messages", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise ApiError(
            400,
            f"A request can carry at most {MAX_MESSAGES} messages; this one has "
            f"{len(messages):,}. Send the latest turns only, or continue a stored conversation "
            "(its history is kept here).",
            code="too_many_messages",
            param="messages",
        )
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise ApiError(400, "Each message must be an object.", code="invalid_type", param=param)
        role = message.get("role")
        if role in IGNORED_ROLES:
            _text(message.get("content"), param)  # still well formed
            continue
        if role not in TURN_ROLES:
            raise ApiError(
                400,
                f"A message's role must be user, assistant or system; {str(role)[:40]!r} is not "
                "supported here (no tools).",
                code="invalid_role",
                param=f"{param}.role",
            )
        turns.append((role, _text(message.get("content"), param)))
    if not turns or turns[-1][0] != "user":
        raise ApiError(
            400,
            "The last message must be the user's question.",
            code="last_message_not_user",
            param="messages",
        )
    question = turns[-1][1].strip()
    if not question:
        raise ApiError(
            400,
            "The question is empty: type a question first.",
            code="empty_question",
            param=f"messages[{len(messages) - 1}].content",
        )
    if len(question) > max_question_chars:
        raise ApiError(
            400,
            f"Questions can be at most {max_question_chars:,} characters; this one has "
            f"{len(question):,}.",
            code="question_too_long",
            param=f"messages[{len(messages) - 1}].content",
        )
    earlier = [(role, text) for role, text in turns[:-1] if text.strip()]
    return question, earlier


def _text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise ApiError(
                    400,
                    "Only text content is supported (no images, audio or files).",
                    code="unsupported_content",
                    param=f"{param}.content",
                )
            if not isinstance(part.get("text"), str):
                raise ApiError(
                    400,
                    "A text part needs its text.",
                    code="invalid_type",
                    param=f"{param}.content",
                )
            parts.append(part["text"])
        return "\n".join(parts)
    raise ApiError(
        400,
        "A message's content must be text (a string or a list of text parts).",
        code="invalid_content",
        param=f"{param}.content",
    )


def _optional_bool(body: dict, name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false.", code="invalid_type", param=name)
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    if not _number(value) or not 0 <= value <= 2:
        raise ApiError(
            400,
            "temperature must be a number from 0 to 2.",
            code="invalid_value",
            param="temperature",
        )
    return float(value)


def _max_tokens(body: dict) -> int | None:
    # max_completion_tokens is OpenAI's newer name for the same limit.
    name = (
        "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    )
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(
            400, f"{name} must be a whole number of at least 1.", code="invalid_value", param=name
        )
    return value


def _uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def _conversation_id(user: Any, header: str | None) -> str | None:
    """The conversation to continue: the ``X-Conversation-Id`` header, else OpenAI's ``user``
    field when it holds a conversation id. Any other ``user`` value (clients send their own
    user names there) is ignored; a header that is not an id is a conversation not found."""
    from_header = None
    if header is not None:
        from_header = _uuid(header.strip())
        if from_header is None:
            raise not_found()
    from_user = _uuid(user) if isinstance(user, str) and len(user) <= 64 else None
    if from_header and from_user and from_header != from_user:
        raise ApiError(
            400,
            "The X-Conversation-Id header and the user field name different conversations.",
            code="conflicting_conversation",
            param="user",
        )
    return from_header or from_user


# --- responses ------------------------------------------------------------------------------


def completion_id(message_id: str | None) -> str:
    """A completion's id: the stored answer's, so a client's id finds the answer in history."""
    return "chatcmpl-" + (uuid.UUID(message_id).hex if message_id else uuid.uuid4().hex)


def now() -> int:
    return int(time.time())


def chunk(
    *, id: str, created: int, delta: dict, finish_reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        **extra,
    }


def usage_chunk(*, id: str, created: int, usage: dict, **extra: Any) -> dict[str, Any]:
    # OpenAI's shape for stream_options.include_usage: a last chunk with no choices.
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [],
        "usage": usage,
        **extra,
    }


def completion(
    *, id: str, created: int, content: str, finish_reason: str, usage: dict, **extra: Any
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
        **extra,
    }


def usage_from(usage: dict) -> dict[str, int]:
    prompt = usage.get("prompt_tokens") or 0
    completion_tokens = usage.get("completion_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def finish_reason(usage: dict, max_tokens: int) -> str:
    """ "length" when the answer used its whole token budget (the model was cut off)."""
    used = usage.get("completion_tokens")
    return "length" if isinstance(used, int) and used >= max_tokens else "stop"


def citation(source: dict, *, collection: str | None, link: str) -> dict[str, Any]:
    """One cited passage as the API shows it: ``number`` is the ``[n]`` in the text; ``url``
    is the document's own address (a web page), ``link`` the passage on this assistant."""
    return {
        "number": source["n"],
        "title": source.get("title") or source.get("source_name") or "",
        "source": source.get("source_name") or "",
        "url": source.get("url") or None,
        "link": link,
        "collection": collection,
        "heading": source.get("heading") or None,
        "page": source.get("page"),
        "quote": source.get("text") or "",
    }


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
