"""Search stage timings, for operators only: Prometheus metrics and one log line per answer.

Per-stage timings (how long the access check, the embedding, the vector and the lexical search
took, and whether the lexical search timed out) depend on what the indexes hold, including
documents the asker may not read, so they never go to clients: a client gets coarse totals
(retrieval, first token, total) only.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

logger = logging.getLogger("assistant.answering")

# Label values come from this fixed set, never from the search result's keys.
STAGES = {
    "acl_ms": "acl",
    "embed_ms": "embed",
    "vector_ms": "vector",
    "lexical_ms": "lexical",
    "total_ms": "total",
}

SEARCH_STAGE_SECONDS = Histogram(
    "assistant_search_stage_seconds",
    "Time spent in one stage of a knowledge search while answering",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SEARCH_LEXICAL_TIMEOUTS = Counter(
    "assistant_search_lexical_timeouts_total",
    "Hybrid searches whose lexical side timed out (answered from the vector side alone)",
)


def search_observe(timings_ms: dict) -> None:
    """Records one search's stage timings (``SearchResult.timings_ms``) in the metrics."""
    for key, stage in STAGES.items():
        value = timings_ms.get(key)
        if isinstance(value, (int, float)):
            SEARCH_STAGE_SECONDS.labels(stage=stage).observe(max(0.0, value) / 1000)
    if timings_ms.get("lexical_timed_out"):
        SEARCH_LEXICAL_TIMEOUTS.inc()


def answer_log(
    *, message_id: str, status: str, timings: dict, search_timings: dict, from_cache: bool = False
) -> None:
    """One structured line per answer, with the search's stage timings beside the totals."""
    logger.info(
        "answer finished",
        extra={
            "message_id": message_id,
            "status": status,
            "from_cache": from_cache,
            "retrieval_ms": _round(timings.get("retrieval_ms")),
            "first_token_ms": _round(timings.get("first_token_ms")),
            "total_ms": _round(timings.get("total_ms")),
            "search": {
                k: (_round(v) if k.endswith("_ms") else v) for k, v in search_timings.items()
            },
        },
    )


def _round(value):
    return (
        round(value, 1)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else value
    )
