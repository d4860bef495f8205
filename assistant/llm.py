"""The one door to the chat model.

Everything that asks a language model for text goes through this module, over
the OpenAI chat API with the official ``openai`` client, so the same code talks
to the local llama.cpp server of the embedded default and to any hosted
endpoint in production. Callers get our own small dataclasses and exceptions,
never ``openai`` types.

Failure policy (the only one: the ``openai`` client's own retries are off):

* connection errors, timeouts, HTTP 429 and 5xx are retried with exponential
  backoff (``Retry-After`` honoured, capped at ``max_backoff``), but only
  *before the first token*: once text has reached the caller, a retry would
  duplicate or contradict it, so a failure then raises ``LLMStreamBroken`` and
  the caller keeps what it already has;
* when the primary model has used up its retries and ``fallback_model`` is
  set, the fallback gets one round of the same policy;
* other 4xx answers (bad request, auth, unknown model) are not retried.

Cancellation is real: closing the generator returned by ``stream_chat`` (or
cancelling the task iterating it) closes the HTTP response, and the server sees
the connection go away and stops generating.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import openai

__all__ = [
    "ChatMessage",
    "Completion",
    "LLMConfig",
    "LLMError",
    "LLMRateLimited",
    "LLMRequestRejected",
    "LLMStreamBroken",
    "LLMUnavailable",
    "TextDelta",
    "aclose_clients",
    "complete_json",
    "count_tokens",
    "stream_chat",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Defaults name the development stack's local model server (assistant/devstack/), which this
# module never imports: the launcher sets OPENAI_BASE_URL and LLM_MODEL for the processes it
# starts, as production does. tests/assistant/test_localmodel.py keeps these two in step.
DEFAULT_BASE_URL = "http://127.0.0.1:8081/v1"  # the launcher's default EMBEDDED_LLM_PORT
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"  # the default local model's served name


# -- data ------------------------------------------------------------------


@dataclass(frozen=True)
class ChatMessage:
    """One message of the conversation sent to the model."""

    role: str  # "system", "user" or "assistant"
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class LLMConfig:
    """Where the model is and how patiently to ask it. Frozen, so it can key caches."""

    base_url: str
    api_key: str
    model: str
    fallback_model: str | None = None
    temperature: float = 0.2
    max_tokens: int = 1024
    connect_timeout: float = 5
    read_timeout: float = 60  # the longest silence tolerated, including before the first token
    max_retries: int = 3
    backoff_base: float = 0.5
    max_backoff: float = 10  # caps both our backoff and a server's Retry-After

    @classmethod
    def from_settings(cls) -> LLMConfig:
        """Build from Django settings, read now (never at import time)."""
        from django.conf import settings

        def get(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value is None or value == "" else value

        return cls(
            base_url=str(get("OPENAI_BASE_URL", DEFAULT_BASE_URL)),
            # The openai client refuses an empty key; local servers ignore it.
            api_key=str(get("OPENAI_API_KEY", "not-needed")),
            model=str(get("LLM_MODEL", DEFAULT_MODEL)),
            fallback_model=get("LLM_FALLBACK_MODEL", None),
            temperature=float(get("LLM_TEMPERATURE", 0.2)),
            max_tokens=int(get("LLM_MAX_TOKENS", 1024)),
            connect_timeout=float(get("LLM_CONNECT_TIMEOUT", 5)),
            read_timeout=float(get("LLM_TIMEOUT", 60)),
            max_retries=int(get("LLM_MAX_RETRIES", 3)),
            backoff_base=float(get("LLM_BACKOFF_BASE", 0.5)),
            max_backoff=float(get("LLM_MAX_BACKOFF", 10)),
        )


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer, in order."""

    text: str


@dataclass(frozen=True)
class Completion:
    """The end of a streamed answer.

    Token counts come from the server when it reports usage; servers that
    ignore ``include_usage`` (llama-cpp-python does) get ``count_tokens``
    estimates instead, flagged by ``usage_estimated``.
    """

    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    usage_estimated: bool = False


# -- errors ----------------------------------------------------------------


class LLMError(Exception):
    """Any failure to get an answer. ``user_message`` is safe to show to a person."""

    user_message = "The language model could not answer."

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class LLMUnavailable(LLMError):
    """Unreachable, timed out or failing with 5xx, after all retries."""

    user_message = "The language model could not be reached. Please try again in a moment."


class LLMRateLimited(LLMError):
    """Still rate limited (HTTP 429) after all retries."""

    user_message = "The language model is busy right now. Please try again in a moment."

    def __init__(self, detail: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class LLMRequestRejected(LLMError):
    """A 4xx other than 429: retrying the same request cannot help."""

    user_message = "The language model rejected the request."


class LLMStreamBroken(LLMError):
    """The stream failed after text was already delivered; keep what arrived."""

    user_message = (
        "The answer was interrupted: the language model stopped partway through. "
        "What it wrote is kept; try again for a complete answer."
    )


class _EndedEarly(Exception):
    """The response body ended without a finish_reason: the server gave up."""


# -- clients ---------------------------------------------------------------

# One client per (event loop, endpoint). A client's pooled connections belong
# to the loop that opened them, and Celery tasks or async_to_sync calls may run
# each call on a fresh loop, so clients are never shared across loops. The lock
# is for threads (each with its own loop) touching the cache at once.
_clients: dict[tuple[int, tuple[Any, ...]], tuple[asyncio.AbstractEventLoop, openai.AsyncOpenAI]]
_clients = {}
_clients_lock = threading.Lock()


def _client_for(config: LLMConfig) -> openai.AsyncOpenAI:
    loop = asyncio.get_running_loop()
    endpoint = (config.base_url, config.api_key, config.connect_timeout, config.read_timeout)
    key = (id(loop), endpoint)
    with _clients_lock:
        for stale in [k for k, (owner, _) in _clients.items() if owner.is_closed()]:
            del _clients[stale]  # its loop is gone, and with it the use of its connections
        if key not in _clients:
            client = openai.AsyncOpenAI(
                base_url=config.base_url,
                api_key=config.api_key,
                max_retries=0,  # our policy below is the only one
                timeout=openai.Timeout(config.read_timeout, connect=config.connect_timeout),
            )
            _clients[key] = (loop, client)
        return _clients[key][1]


async def aclose_clients() -> None:
    """Close the clients of the running loop (at shutdown, or between tests)."""
    loop = asyncio.get_running_loop()
    with _clients_lock:
        mine = [_clients.pop(k)[1] for k, (owner, _) in list(_clients.items()) if owner is loop]
    for client in mine:
        await client.close()


# -- retry policy ----------------------------------------------------------

_RETRYABLE = (LLMUnavailable, LLMRateLimited)


def _as_llm_error(exc: BaseException) -> LLMError | None:
    """Translate a transport or API failure; None for anything else (a bug: let it raise)."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, openai.RateLimitError):
        return LLMRateLimited(str(exc), retry_after=_retry_after(exc.response))
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return LLMUnavailable(f"HTTP {exc.status_code}: {exc.message}")
        return LLMRequestRejected(f"HTTP {exc.status_code}: {exc.message}")
    if isinstance(exc, openai.APITimeoutError):
        return LLMUnavailable("timed out")
    # APIConnectionError, an error event inside the stream, or (openai 1.x) a
    # raw httpx error raised while reading the stream.
    if isinstance(exc, openai.APIError | httpx.TransportError | _EndedEarly):
        return LLMUnavailable(f"{type(exc).__name__}: {exc}")
    return None


def _retry_after(response: Any) -> float | None:
    """Seconds a 429 asks us to wait: ``retry-after-ms``, or ``Retry-After`` in seconds or as a date."""
    headers = getattr(response, "headers", None) or {}
    try:
        if milliseconds := headers.get("retry-after-ms"):
            return float(milliseconds) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        if re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
            return float(value)
        return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


def _backoff(config: LLMConfig, attempt: int, error: LLMError) -> float:
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return min(max(retry_after, 0.0), config.max_backoff)
    delay = min(config.backoff_base * 2**attempt, config.max_backoff)
    # Jitter, so workers that failed together do not retry together.
    return delay * random.uniform(0.5, 1.0)


async def _retrying(
    config: LLMConfig, model: str, attempt_once: Callable[[str], Awaitable[T]]
) -> T:
    """Run ``attempt_once(model)`` up to ``max_retries + 1`` times on transient failures."""
    for attempt in range(config.max_retries + 1):
        try:
            return await attempt_once(model)
        except Exception as exc:
            error = _as_llm_error(exc)
            if error is None:
                raise
            if not isinstance(error, _RETRYABLE) or attempt == config.max_retries:
                if error is exc:
                    raise
                raise error from exc
            delay = _backoff(config, attempt, error)
            logger.warning(
                "LLM %s failed (%.200s); retry %d in %.2fs", model, error, attempt + 1, delay
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # the loop either returns or raises


async def _with_policy(config: LLMConfig, attempt_once: Callable[[str], Awaitable[T]]) -> T:
    """Retries on the primary model, then one round on the fallback model if there is one."""
    try:
        return await _retrying(config, config.model, attempt_once)
    except _RETRYABLE as exc:
        if not config.fallback_model or config.fallback_model == config.model:
            raise
        logger.warning(
            "LLM %s gave up (%.200s); trying %s", config.model, exc, config.fallback_model
        )
        return await _retrying(config, config.fallback_model, attempt_once)


# -- streaming -------------------------------------------------------------


def _request_args(messages: Sequence[ChatMessage], config: LLMConfig, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [message.as_dict() for message in messages],
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
    }


@dataclass
class _StreamState:
    """What the chunks said so far about the answer as a whole."""

    model: str
    prompt_estimate: int
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    parts: list[str] = field(default_factory=list)

    def feed(self, chunk: Any) -> list[TextDelta]:
        """Absorb one ``chat.completion.chunk``; return its text, if any."""
        self.model = getattr(chunk, "model", None) or self.model
        usage = getattr(chunk, "usage", None)
        if usage is not None:  # the extra last chunk that include_usage asks for
            self.prompt_tokens = usage.prompt_tokens
            self.completion_tokens = usage.completion_tokens
        deltas = []
        for choice in chunk.choices or ():
            if choice.index != 0:
                continue
            if choice.delta is not None and choice.delta.content:
                deltas.append(TextDelta(choice.delta.content))
                self.parts.append(choice.delta.content)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
        return deltas

    def completion(self) -> Completion:
        if self.completion_tokens is not None:
            return Completion(
                self.model, self.prompt_tokens, self.completion_tokens, self.finish_reason
            )
        estimate = count_tokens("".join(self.parts))
        return Completion(self.model, self.prompt_estimate, estimate, self.finish_reason, True)


def _prompt_estimate(messages: Sequence[ChatMessage]) -> int:
    # Chat templates wrap each message in a few marker tokens, and prime the reply.
    return sum(count_tokens(message.content) + 4 for message in messages) + 3


@dataclass
class _OpenStream:
    """A response whose first text (or whole, if it had none) has been read."""

    stream: Any  # openai.AsyncStream[ChatCompletionChunk]
    state: _StreamState
    first: list[TextDelta] = field(default_factory=list)
    exhausted: bool = False


async def _next_chunk(stream: Any) -> Any | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


async def _open_stream(
    client: openai.AsyncOpenAI, messages: Sequence[ChatMessage], config: LLMConfig, model: str
) -> _OpenStream:
    """Send the request and read up to the first text, so failures so far can be retried."""
    stream = await client.chat.completions.create(
        **_request_args(messages, config, model),
        stream=True,
        stream_options={"include_usage": True},
    )
    opened = _OpenStream(stream, _StreamState(model, _prompt_estimate(messages)))
    try:
        while not opened.first:
            chunk = await _next_chunk(stream)
            if chunk is None:
                if opened.state.finish_reason is None:
                    raise _EndedEarly("stream ended before any text")
                opened.exhausted = True  # a legitimately empty answer
                break
            opened.first = opened.state.feed(chunk)
    except BaseException:
        await stream.close()
        raise
    return opened


async def stream_chat(
    messages: Sequence[ChatMessage], *, config: LLMConfig | None = None
) -> AsyncIterator[TextDelta | Completion]:
    """Stream an answer: ``TextDelta`` items in order, then exactly one ``Completion``.

    Raises ``LLMUnavailable``, ``LLMRateLimited`` or ``LLMRequestRejected``
    before any text, ``LLMStreamBroken`` after some. Close the iterator
    (``aclose()``) or cancel the task to stop generation on the server; a
    consumer that may stop early should iterate inside
    ``contextlib.aclosing(stream_chat(...))`` so that happens at once, not
    whenever the abandoned generator is garbage-collected.
    """
    config = config or LLMConfig.from_settings()
    client = _client_for(config)
    opened = await _with_policy(config, lambda model: _open_stream(client, messages, config, model))
    try:
        for delta in opened.first:
            yield delta
        while not opened.exhausted:
            try:
                chunk = await _next_chunk(opened.stream)
            except Exception as exc:
                raise LLMStreamBroken(f"{type(exc).__name__}: {exc}") from exc
            if chunk is None:
                break
            for delta in opened.state.feed(chunk):
                yield delta
        if opened.state.finish_reason is None:
            # The body ended cleanly but the answer did not: a server restarted
            # behind a proxy, or llama-cpp-python with interrupt_requests on,
            # which ends a running answer with a bare [DONE] when another
            # request arrives.
            raise LLMStreamBroken("stream ended without a finish_reason")
        yield opened.state.completion()
    finally:
        # Runs on aclose() and on cancellation too: closing the response is
        # what tells the server to stop generating.
        await opened.stream.close()


# -- non-streaming ---------------------------------------------------------


# Base URLs known to want a schema the llama-cpp-python way (see below).
_embedded_schema_style: set[str] = set()


def _response_format(schema: dict[str, Any] | None, *, embedded: bool) -> dict[str, Any]:
    """OpenAI's ``json_schema`` format, or llama-cpp-python's ``json_object`` + ``schema``."""
    if schema is None:
        return {"type": "json_object"}
    if embedded:
        return {"type": "json_object", "schema": schema}
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(schema.get("title", "response")))[:64]
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def _rejects_json_schema(exc: openai.APIStatusError) -> bool:
    # llama-cpp-python only knows {"type": "json_object", "schema": ...} and
    # answers the OpenAI form with a validation error (as HTTP 500, which we
    # must not mistake for an outage and retry four times).
    return exc.status_code in {400, 422, 500} and "response_format" in str(exc.message)


async def complete_json(
    messages: Sequence[ChatMessage],
    *,
    schema: dict[str, Any] | None = None,
    config: LLMConfig | None = None,
) -> str:
    """Ask for a whole JSON answer at once and return its text (parse it yourself).

    With ``schema`` the server is asked to follow that JSON Schema; without,
    for any JSON object (OpenAI then wants the word "JSON" in the messages).
    Same retry and fallback policy as ``stream_chat``.
    """
    config = config or LLMConfig.from_settings()
    client = _client_for(config)

    async def ask(model: str, embedded: bool) -> str:
        response = await client.chat.completions.create(
            **_request_args(messages, config, model),
            response_format=_response_format(schema, embedded=embedded),  # type: ignore[arg-type]
        )
        if not response.choices or response.choices[0].message.content is None:
            raise LLMUnavailable("the response had no content")
        return response.choices[0].message.content

    async def attempt_once(model: str) -> str:
        embedded = config.base_url in _embedded_schema_style
        try:
            return await ask(model, embedded)
        except openai.APIStatusError as exc:
            if schema is None or embedded or not _rejects_json_schema(exc):
                raise
        _embedded_schema_style.add(config.base_url)  # ask this server its own way from now on
        logger.info("%s wants JSON schemas the llama-cpp-python way", config.base_url)
        return await ask(model, True)

    return await _with_policy(config, attempt_once)


# -- token estimate --------------------------------------------------------

# ASCII words, single digits, runs of other letters, any other symbol, whitespace.
_PIECES = re.compile(r"[A-Za-z]+|\d|[^\W\d_A-Za-z]+|\S|\s+")


def count_tokens(text: str) -> int:
    """Estimate how many tokens ``text`` costs, without any tokenizer files.

    Byte-pair tokenizers give a common word one token and split long or rare
    words into pieces of about five letters; digits and punctuation tend to be
    a token each; a space mostly rides along with the next word; CJK costs one
    or two tokens per character. Measured against SmolLM2's tokenizer (the
    local model) on Django's documentation and source, the estimate is 9% high
    on prose and 17% high on code: deliberately high, so prompt budgets built on
    it stay inside the context window. Tokenizers with bigger vocabularies (the
    hosted models') use fewer tokens still.
    """
    count = 0
    for piece in _PIECES.findall(text):
        first = piece[0]
        if first.isspace():
            count += (len(piece) - 1) // 4  # long runs of indentation cost a little
        elif first.isascii() and first.isalpha():
            count += 1 if len(piece) <= 7 else math.ceil(len(piece) / 5)
        elif first.isalpha():
            count += len(piece) + sum(1 for char in piece if char >= "\u2e80")  # CJK: ~2 each
        else:
            count += 1
    return count
