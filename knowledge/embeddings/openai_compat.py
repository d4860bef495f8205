"""Embeddings from an OpenAI-compatible ``POST /v1/embeddings`` endpoint.

Works with OpenAI itself and with self-hosted servers that speak the same protocol
(vLLM, text-embeddings-inference, LocalAI, Ollama...). The official ``openai`` client
does the HTTP; retries are ours (the client's are switched off) so that the policy is
explicit and tested: 408/409/429/5xx and connection errors are retried with exponential
backoff, honouring ``Retry-After``; after the bound, or when the server asks for a longer
wait than we are willing to block a worker for, :class:`TransientEmbeddingError` tells the
caller's task to retry later. Any other 4xx is a permanent :class:`EmbeddingError`.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import openai

from knowledge.embeddings.base import (
    Embedder,
    EmbeddingError,
    TransientEmbeddingError,
    checked_texts,
    l2_normalised,
)

logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
RETRYABLE_STATUSES = frozenset({408, 409, 429})
# OpenAI's "text-embedding-3" models can shorten their vectors when asked (``dimensions``);
# many compatible servers reject that parameter, so it is only sent to models that take it.
SHORTENABLE_PREFIXES = ("text-embedding-3",)
STATUS_HINTS = {
    401: "check EMBEDDINGS_API_KEY",
    403: "check EMBEDDINGS_API_KEY and the account's access to the model",
    404: "check EMBEDDINGS_BASE_URL and EMBEDDINGS_MODEL",
}


class OpenAIEmbedder(Embedder):
    """Vectors from a remote model; ``dimensions`` must match what the server returns."""

    def __init__(
        self,
        *,
        model: str,
        dimensions: int,
        base_url: str | None = None,
        api_key: str | None = None,
        request_dimensions: bool | None = None,
        batch_size: int = 128,
        max_tokens: int = 8191,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        _check_config(
            model=model,
            dimensions=dimensions,
            batch_size=batch_size,
            max_retries=max_retries,
            base_url=base_url,
            api_key=api_key,
        )
        self.name = f"openai:{model}"
        self.model = model
        self.dimensions = dimensions
        self.max_tokens = max_tokens
        self.base_url = base_url or OPENAI_BASE_URL
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        if request_dimensions is None:
            request_dimensions = model.startswith(SHORTENABLE_PREFIXES)
        self.request_dimensions = request_dimensions
        # Local servers usually take no key, but the client insists on one.
        self._api_key = api_key or "unused"
        self._timeout = openai.Timeout(timeout, connect=connect_timeout)
        self._sleep = sleep
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        texts = checked_texts(texts)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._embed_batch(texts[start : start + self.batch_size]))
        return vectors

    def count_tokens(self, text: str) -> int:
        """An estimate: the remote tokenizer is not available offline.

        About four characters per token for English (OpenAI's rule of thumb), never fewer
        than one token per word, so estimates err on the high side.
        """
        return max(len(text.split()), math.ceil(len(text) / 4))

    # -- one request, with retries ------------------------------------------------------------

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        attempt = 0
        while True:
            try:
                response = self._request(batch)
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                delay = self._retry_delay(exc, attempt)
                attempt += 1
                logger.warning(
                    "embedding request failed, retrying",
                    extra={
                        "model": self.model,
                        "attempt": attempt,
                        "delay": delay,
                        "error": _describe(exc),
                    },
                )
                self._sleep(delay)
                continue
            return self._vectors(response, expected=len(batch))

    def _request(self, batch: list[str]) -> Any:
        extra: dict[str, Any] = {}
        if self.request_dimensions:
            extra["dimensions"] = self.dimensions
        return self._client_instance().embeddings.create(
            model=self.model, input=batch, encoding_format="float", **extra
        )

    def _retry_delay(self, exc: openai.APIError, attempt: int) -> float:
        """Seconds to wait before the next try; raises when we should stop trying."""
        status = getattr(exc, "status_code", None)
        if status is not None and status not in RETRYABLE_STATUSES and status < 500:
            hint = STATUS_HINTS.get(status)
            raise EmbeddingError(
                f"{self.name} at {self.base_url} refused the request: {_describe(exc)}"
                + (f" ({hint})" if hint else "")
            ) from exc
        retry_after = _retry_after(exc.response.headers) if status is not None else None
        message = f"{self.name} at {self.base_url} is unavailable: {_describe(exc)}"
        if attempt >= self.max_retries:
            raise TransientEmbeddingError(
                f"{message} (gave up after {attempt + 1} tries)", retry_after=retry_after
            ) from exc
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                raise TransientEmbeddingError(
                    f"{message} (asked to wait {retry_after:.0f}s)", retry_after=retry_after
                ) from exc
            return retry_after
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return ceiling * (0.5 + random.random() / 2)  # jitter spreads out concurrent workers

    def _vectors(self, response: Any, *, expected: int) -> list[list[float]]:
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != expected:
            raise EmbeddingError(f"{self.name} returned {len(data)} vectors for {expected} texts")
        vectors = [list(item.embedding) for item in data]
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise EmbeddingError(self._dimension_mismatch(len(vector)))
        return [l2_normalised(vector) for vector in vectors]

    def _dimension_mismatch(self, got: int) -> str:
        advice = (
            "set EMBEDDINGS_DIMENSIONS to the model's size"
            if self.request_dimensions
            else "set EMBEDDINGS_DIMENSIONS to the model's size, or "
            "EMBEDDINGS_REQUEST_DIMENSIONS=true if the server can shorten its vectors"
        )
        return (
            f"{self.name} returned {got}-dimensional vectors but {self.dimensions} are "
            f"configured: {advice}"
        )

    def _client_instance(self) -> openai.OpenAI:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = openai.OpenAI(
                        base_url=self.base_url,
                        api_key=self._api_key,
                        timeout=self._timeout,
                        max_retries=0,
                    )
        return self._client


def _check_config(
    *,
    model: str,
    dimensions: int,
    batch_size: int,
    max_retries: int,
    base_url: str | None,
    api_key: str | None,
) -> None:
    if not model:
        raise EmbeddingError("EMBEDDINGS_MODEL is not set")
    if dimensions < 1:
        raise EmbeddingError("EMBEDDINGS_DIMENSIONS must be a positive number")
    if batch_size < 1 or max_retries < 0:
        raise EmbeddingError("batch_size must be >= 1 and max_retries >= 0")
    if not api_key and (not base_url or base_url.rstrip("/") == OPENAI_BASE_URL):
        raise EmbeddingError("EMBEDDINGS_API_KEY is required for OpenAI's own endpoint")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's requested wait in seconds (``retry-after-ms``, seconds or an HTTP date)."""
    if (value := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(exc: openai.APIError) -> str:
    status = getattr(exc, "status_code", None)
    if status is None:
        return f"{type(exc).__name__}: {exc.message}"
    return f"HTTP {status}: {_error_message(exc)}"


def _error_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return exc.message
