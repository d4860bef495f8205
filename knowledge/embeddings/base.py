"""The embedder interface, its errors and the helpers every backend shares."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence


class EmbeddingError(Exception):
    """A permanent failure: bad configuration or bad input. Retrying will not help."""


class TransientEmbeddingError(EmbeddingError):
    """The service was unavailable (429, 5xx, timeouts) even after bounded retries.

    The caller's Celery task should retry later; ``retry_after`` is the server's
    suggested wait in seconds when it gave one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Embedder(ABC):
    """One embedding model behind one backend (the extension point for new backends).

    Subclasses set ``name``, ``dimensions`` and ``max_tokens`` and implement
    :meth:`embed_documents` and :meth:`count_tokens`. Contract:

    - ``name`` identifies the vector space ("backend:model"): vectors from two names must
      never be compared, so stored chunks remember it.
    - Vectors are lists of ``dimensions`` floats with unit L2 length, in input order.
    - ``embed_documents`` batches internally: callers may pass any number of texts.
    - ``max_tokens`` is the number of tokens of *text* the model reads (special tokens
      excluded); longer texts are truncated. ``count_tokens`` counts on the same scale, so a
      chunk fits when ``count_tokens(text) <= max_tokens``.
    - Implementations are thread-safe and load heavy resources lazily, so constructing one
      is cheap and never touches the network.
    """

    name: str
    dimensions: int
    max_tokens: int

    @abstractmethod
    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts to be stored (chunks)."""

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query. Override for models that embed queries differently."""
        return self.embed_documents([text])[0]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed several queries: one batched call where queries embed as documents do (one
        request to an embeddings API, not one each), else one query at a time."""
        if type(self).embed_query is Embedder.embed_query:
            return self.embed_documents(list(texts)) if texts else []
        return [self.embed_query(text) for text in texts]

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without special tokens, with the model's tokenizer where possible."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.dimensions}-d)>"


def checked_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list, refusing input that no backend can embed."""
    if isinstance(texts, str | bytes):
        raise EmbeddingError("embed_documents() takes a sequence of texts, not one string")
    texts = list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise EmbeddingError(f"text {position} is {type(text).__name__}, not str")
        if not text.strip():
            raise EmbeddingError(f"text {position} is empty")
    return texts


def l2_normalised(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(v * v for v in vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise EmbeddingError("the model returned a zero or non-finite vector")
    return [v / norm for v in vector]
