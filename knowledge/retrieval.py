"""Permission-aware hybrid retrieval: the one selector every door uses to find passages.

Both searches run with the user's readable collection ids inside the SQL, so the top-k is
taken among chunks the user may see (never filtered after the fact). pgvector's iterative
index scans keep a filtered HNSW query returning k rows. The two rankings are fused by
reciprocal rank; neighbouring chunks of each hit are added for context.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import OperationalError, connection, transaction

from knowledge import embeddings
from knowledge.selectors import knowledge_versions, readable_collection_ids

MODES = ("vector", "lexical", "hybrid")
RRF_K = 60


@dataclass
class SearchHit:
    chunk_id: int
    source_id: int
    collection_id: int
    ordinal: int
    text: str
    heading_path: list[str]
    page: int | None
    document_title: str
    source_name: str
    source_url: str
    score: float
    similarity: float | None = None  # cosine similarity to the query, when it was embedded
    vector_rank: int | None = None
    lexical_rank: int | None = None
    before: str = ""  # the neighbouring passages, for the prompt's context
    after: str = ""

    @property
    def heading(self) -> str:
        return " › ".join(self.heading_path)


@dataclass
class SearchResult:
    hits: list[SearchHit]
    mode: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    query_vector: list[float] | None = None  # the embedded query, for callers that reuse it
    # The collections searched, each with its knowledge version read before the search.
    knowledge_versions: dict[int, int] = field(default_factory=dict)


_VECTOR_SQL = """
WITH nearest AS MATERIALIZED (
    SELECT id, embedding <=> %(vec)s::vector AS distance
    FROM knowledge_chunk
    WHERE collection_id = ANY(%(collections)s)
    ORDER BY embedding <=> %(vec)s::vector
    LIMIT %(limit)s
)
SELECT id, distance FROM nearest ORDER BY distance
"""

# websearch_to_tsquery ANDs every term, which misses most natural-language questions, and OR-ing
# the lexemes lets common words decide the ranking. So a chunk scores by coverage: the sum of
# the idf of the query's lexemes it contains (idf = ln(N / (1 + chunks holding the lexeme)),
# counted over the collections this user may read, so no count reveals other collections),
# with cover density as the tie-breaker. Measured on the Django-docs evaluation set
# (docs/BENCHMARKS.md), this took hybrid MRR from 0.746 (plain OR + ts_rank_cd, below vector
# alone at 0.772) to 0.834, and dropping common words in hybrid mode to 0.851.
#
# Term at a time: document frequencies come from knowledge_lexemestat (kept exact by triggers,
# summed over the readable collections), so common words are dropped before any posting is
# read; one GIN lookup per kept lexeme returns the chunks holding it, idfs are summed per chunk,
# and only the best 200 have their tsvector read for the tie-breaker (covers are rounded so that
# equal sums compare equal whatever order the floats were added in). Lexemes found in more
# than ``max_df`` of the readable chunks weigh almost nothing and cost the most, so they are
# dropped (unless that would leave none).
#
# Each row also carries the query's weight: the idf of its kept lexemes plus, for each lexeme
# no readable chunk holds, the largest idf (a word the corpus never uses says the most about
# the question). cover / query_weight is the share of the question a chunk holds, which the
# hybrid fusion uses to let only clear lexical matches move the vector ranking.
_LEXICAL_SQL = """
WITH lex AS (
    SELECT DISTINCT lexeme FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) AS lexeme
), total AS (
    SELECT coalesce(sum(ndoc), 0)::float AS n FROM knowledge_lexemestat
    WHERE lexeme = '' AND collection_id = ANY(%(collections)s)
), idf AS (
    SELECT lex.lexeme, sum(s.ndoc) AS df, greatest(ln(total.n / (1 + sum(s.ndoc))), 0) AS idf
    FROM lex
    JOIN knowledge_lexemestat s ON s.lexeme = lex.lexeme AND s.collection_id = ANY(%(collections)s)
    CROSS JOIN total
    WHERE s.ndoc > 0
    GROUP BY lex.lexeme, total.n
), w AS (
    SELECT idf.* FROM idf, total
    WHERE idf.df <= %(max_df)s * total.n
       OR NOT EXISTS (SELECT 1 FROM idf, total WHERE idf.df <= %(max_df)s * total.n)
), q AS (
    SELECT to_tsquery('english', string_agg(quote_literal(lexeme), ' | ' ORDER BY lexeme)) AS query FROM w
), scored AS (
    SELECT m.id, round(sum(w.idf)::numeric, 9) AS cover
    FROM w CROSS JOIN LATERAL (
        SELECT c.id FROM knowledge_chunk c
        WHERE c.search_vector @@ quote_literal(w.lexeme)::tsquery
          AND c.collection_id = ANY(%(collections)s)
    ) m
    GROUP BY m.id ORDER BY cover DESC, m.id LIMIT 200
)
SELECT s.id, s.cover, ts_rank_cd(c.search_vector, q.query, 1) AS rank,
       (SELECT coalesce(sum(w.idf), 0) FROM w)
         + ((SELECT count(*) FROM lex) - (SELECT count(*) FROM idf))
           * (SELECT ln(greatest(total.n, 1)) FROM total) AS query_weight
FROM scored s JOIN knowledge_chunk c ON c.id = s.id, q
ORDER BY s.cover DESC, rank DESC, s.id
LIMIT %(limit)s
"""

# Dropping common words helps the fusion (the vector side covers them) but not a lexical-only
# list, which keeps every word.
LEXICAL_MAX_DF = {"hybrid": 0.05, "lexical": 1.0}

# A web page marked gone (404/410 at its last checks, or no longer in its sitemap) keeps its
# passages, so its return costs no embedding, but answers nothing meanwhile: its site took it
# down, perhaps on purpose. Its collection's knowledge version changes with ``gone_at``.
_DETAILS_SQL = """
SELECT c.id, c.source_id, c.collection_id, c.ordinal, c.text, c.heading_path, c.page,
       d.title, s.name, s.url,
       CASE WHEN %(vec)s::text IS NULL THEN NULL ELSE 1 - (c.embedding <=> %(vec)s::vector) END
FROM knowledge_chunk c
JOIN knowledge_document d ON d.id = c.document_id
JOIN knowledge_source s ON s.id = c.source_id
WHERE c.id = ANY(%(ids)s) AND c.collection_id = ANY(%(collections)s)
  AND s.gone_at IS NULL
"""

_NEIGHBOURS_SQL = """
SELECT c.source_id, c.ordinal, c.text
FROM knowledge_chunk c
JOIN unnest(%(sources)s::bigint[], %(ordinals)s::int[]) AS want(source_id, ordinal)
  ON c.source_id = want.source_id AND c.ordinal = want.ordinal
WHERE c.collection_id = ANY(%(collections)s)
"""


def _vector_ranking(cursor, query_vector, collections, limit, ef_search) -> list[int]:
    return [
        chunk_id
        for chunk_id, _ in _vector_scores(cursor, query_vector, collections, limit, ef_search)
    ]


_SCOPE_SQL = """
SELECT coalesce(sum(ndoc), 0) FROM knowledge_lexemestat
WHERE lexeme = '' AND collection_id = ANY(%(collections)s)
"""


def _fetch_within(cursor, sql: str, params: dict, timeout_ms: int) -> list[tuple] | None:
    """The rows of ``sql``, or None when it ran longer than ``timeout_ms`` (0: no limit).

    In a savepoint, so a cancelled statement does not end the search's transaction."""
    try:
        with transaction.atomic():
            if timeout_ms:
                cursor.execute("SET LOCAL statement_timeout = %s", [int(timeout_ms)])
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            cursor.execute("SET LOCAL statement_timeout = 0")
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "57014":  # query_canceled
            raise
        return None
    return rows


def _readable_chunks(cursor, collections, timeout_ms: int = 0) -> int | None:
    """How many chunks the reader may search, or None when counting took over ``timeout_ms``
    (the statistics table locked, e.g. by a migration): the search then walks the graph
    rather than wait."""
    rows = _fetch_within(cursor, _SCOPE_SQL, {"collections": collections}, timeout_ms)
    return None if rows is None else int(rows[0][0])


def _vector_scores(
    cursor, query_vector, collections, limit, ef_search, *, exact: bool = False
) -> list[tuple[int, float]]:
    """The nearest chunks with their cosine similarity to the query, best first.

    ``exact`` compares the query with every readable chunk instead of walking the HNSW graph.
    The graph holds every collection's chunks: when the readable ones are a small part of it,
    a filtered walk misses some of their nearest (measured: docs/BENCHMARKS.md), while an exact
    scan of a few thousand vectors takes milliseconds.
    """
    if exact:
        # The planner then reads the readable chunks through the collection index and sorts.
        cursor.execute("SET LOCAL enable_indexscan = off")
    cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(ef_search, limit)])
    cursor.execute(
        _VECTOR_SQL,
        {"vec": _vector_literal(query_vector), "collections": collections, "limit": limit},
    )
    rows = cursor.fetchall()
    if exact:
        cursor.execute("SET LOCAL enable_indexscan = on")
    return [(row[0], 1.0 - float(row[1])) for row in rows]


def _lexical_ranking(
    cursor, text, collections, limit, timeout_ms: int, max_df: float = 1.0
) -> list[int] | None:
    """The chunk ids of :func:`_lexical_hits`, best first, or None when it timed out."""
    hits = _lexical_hits(cursor, text, collections, limit, timeout_ms, max_df)
    return None if hits is None else [hit.chunk_id for hit in hits]


def _lexical_hits(
    cursor, text, collections, limit, timeout_ms: int, max_df: float = 1.0
) -> list[LexicalHit] | None:
    """The lexical ranking, or None when it took longer than ``timeout_ms``.

    Coverage scoring reads the postings of every word of the question; on a large corpus a
    long question can still take a while. Hybrid search then answers from the vector side alone
    instead of making the user wait.
    """
    params = {"text": text, "collections": collections, "limit": limit, "max_df": max_df}
    rows = _fetch_within(cursor, _LEXICAL_SQL, params, timeout_ms)
    if rows is None:
        return None
    # A query whose every word is in every chunk weighs nothing: no word tells chunks apart,
    # so each match holds all there is (the tie-breaker ranks them).
    return [LexicalHit(row[0], float(row[1]) / float(row[3]) if row[3] else 1.0) for row in rows]


def _vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def fuse(
    rankings: dict[str, list[int]], weights: dict[str, float] | None = None
) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(d) = sum over rankings of weight / (RRF_K + rank)."""
    scores: dict[int, float] = {}
    for name, ids in rankings.items():
        weight = (weights or {}).get(name, 1.0)
        for rank, chunk_id in enumerate(ids, 1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (RRF_K + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


# -- what the query looks like ---------------------------------------------------------------

# Tokens that name something exactly: a lexical match on them identifies the passage that
# documents it, which a sentence embedding blurs. Plain acronyms (URL, CSRF, HTML) are left out:
# they appear in ordinary questions and in many passages alike.
_IDENTIFIER = re.compile(
    # Each alternative starts only where a token starts (the look-behinds), so a long run of
    # word characters is scanned once, not once per position.
    r"""
      (?<![\w.])[A-Za-z_]\w*+(?:\.[A-Za-z_]\w*+)+    # dotted names: os.path.join, QuerySet.filter
    | (?<!\w)\w*?[A-Za-z0-9]_\w                      # snake_case, __dunder__, ALL_CAPS_SETTINGS
    | (?<!\w)_\w                                     # _private, __init__
    | (?<!\w)[A-Z][a-z0-9]++(?:[A-Z][a-z0-9]++)+(?!\w)  # CamelCase: TransactionTestCase
    | (?<!\w)[a-z]++[A-Z][A-Za-z0-9]*+(?!\w)           # camelCase: getElementById
    | (?<!\w)[A-Z]{1,6}-?\d{2,}(?!\w)                # error codes: E-4711, HTTP404, W042
    | (?<!\w)\w++\(\)                                # calls: len()
    | \{[%{]|[%}]\}                                  # template syntax: {% spaceless %}
    | (?<![\w-])--?[a-z][\w-]*+                       # command-line options: --fake, -v
    """,
    re.VERBOSE,
)
# Enough of a query to see its shape; a pasted page is not scanned to the end.
_SHAPE_PREFIX = 500
_WORD = re.compile(r"[^\W_][\w'.-]*|_\w+")
# Two-letter abbreviations with dots ("e.g.", "i.e.") look dotted but are prose.
_PROSE_DOTTED = re.compile(r"\b(?:e\.g|i\.e|etc|vs|cf|a\.m|p\.m)\.", re.IGNORECASE)
# A query of a few words without a question is a keyword search ("intcomma", "regroup
# template tag"): people type those when they know the exact term.
KEYWORD_QUERY_MAX_WORDS = 3
_QUESTION_WORDS = frozenset(
    [
        "how",
        "what",
        "why",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "can",
        "could",
        "should",
        "would",
        "is",
        "are",
        "does",
        "do",
        "did",
        "wie",
        "was",
        "warum",
        "wann",
        "wo",
        "welche",
        "kann",
        "comment",
        "quoi",
        "pourquoi",
        "quand",
        "où",
        "quel",
        "quelle",
    ]
)

QUERY_SHAPES = ("identifier", "natural")


def query_shape(query: str) -> str:
    """``"identifier"`` when the query names something exactly, else ``"natural"``.

    Identifiers: dotted names, snake_case, CamelCase, camelCase, ALL_CAPS_WITH_UNDERSCORES,
    error codes, calls, template tags, command-line options; or a short keyword query (at
    most three words, no question mark, not opening with a question word).
    """
    text = _PROSE_DOTTED.sub(" ", query[:_SHAPE_PREFIX]).strip()
    if _IDENTIFIER.search(text):
        return "identifier"
    words = _WORD.findall(text)
    if (
        0 < len(words) <= KEYWORD_QUERY_MAX_WORDS
        and "?" not in text
        and words[0].lower() not in _QUESTION_WORDS
    ):
        return "identifier"
    return "natural"


# -- fusion ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LexicalHit:
    chunk_id: int
    coverage: float  # share of the query's idf mass (its kept lexemes) this chunk contains


@dataclass(frozen=True)
class Fusion:
    """How much the lexical ranking may move the vector ranking, for one query shape."""

    lexical_weight: float
    min_coverage: float  # lexical hits holding less of the query are left out of the fusion


# The vector ranking leads; lexical matches lift what they clearly identify. An identifier is
# nearly always the rarest word of its query, so a chunk holding half the query's weight holds
# it; a natural question's chunk must hold a third of its weight, and counts half as much.
# Chosen on the Django set (natural MRR 0.743 vector, 0.831 equal-weight RRF, 0.853 this; the
# grid is flat around it) and then measured, untuned, on the Python set: docs/BENCHMARKS.md.
# Equal weights let matches on a question's incidental words push good vector hits down on
# documents the lexical side was not tuned for, which put the first hybrid below vector alone.
FUSION = {
    "identifier": Fusion(lexical_weight=1.0, min_coverage=0.5),
    "natural": Fusion(lexical_weight=0.5, min_coverage=0.3),
}


def fuse_hybrid(
    vector_ids: list[int],
    lexical: list[LexicalHit] | None,
    *,
    shape: str,
    fusion: dict[str, Fusion] | None = None,
) -> tuple[list[tuple[int, float]], list[int]]:
    """The hybrid ranking for a query of ``shape``, and the lexical ids that took part."""
    rule = (fusion or FUSION)[shape]
    lexical_ids = [h.chunk_id for h in lexical or () if h.coverage >= rule.min_coverage]
    fused = fuse(
        {"vector": vector_ids, "lexical": lexical_ids},
        {"vector": 1.0, "lexical": rule.lexical_weight},
    )
    return fused, lexical_ids


# Score fusion: the vector similarity leads and a lexical hit adds this much per unit of the
# query's idf mass it holds (a chunk only the lexical side found starts at the lowest vector
# similarity of the pool). Listed as a candidate before the held-out sets were seen; chosen or
# not by the rule written in docs/BENCHMARKS.md before the third corpus was ranked.
LEXICAL_SCORE_WEIGHT = 0.05
# "rank": fuse_hybrid (weighted reciprocal rank fusion by query shape); "score": fuse_scores.
HYBRID_FUSION = "score"


def fuse_scores(
    vector_scores: list[tuple[int, float]],
    lexical: list[LexicalHit] | None,
    *,
    weight: float = LEXICAL_SCORE_WEIGHT,
) -> tuple[list[tuple[int, float]], list[int]]:
    """The hybrid ranking by score: cosine similarity + ``weight`` x lexical coverage; and the
    lexical ids that took part."""
    floor = min((similarity for _, similarity in vector_scores), default=0.0)
    scores = dict(vector_scores)
    for hit in lexical or ():
        scores[hit.chunk_id] = scores.get(hit.chunk_id, floor) + weight * hit.coverage
    fused = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return fused, [hit.chunk_id for hit in lexical or ()]


def search_chunks_for_user(
    *,
    user,
    query: str,
    k: int = 6,
    mode: str = "hybrid",
    collection_ids: Sequence[int] | None = None,
    neighbours: bool = True,
    candidates: int = 40,
    ef_search: int = 80,
) -> SearchResult:
    """The passages ``user`` may read that best match ``query``.

    ``collection_ids`` narrows the search (it can never widen it past what the user may read).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    started = time.perf_counter()
    allowed = readable_collection_ids(user)
    if collection_ids is not None:
        allowed = sorted(set(allowed) & {int(c) for c in collection_ids})
    versions = knowledge_versions(allowed)
    timings = {"acl_ms": _ms(started)}
    query = query.strip()
    if not allowed or not query:
        return SearchResult([], mode, timings, knowledge_versions=versions)
    pool = max(candidates, k)
    rankings: dict[str, list[int]] = {}
    vector = None
    if mode in ("vector", "hybrid"):
        t = time.perf_counter()
        vector = embeddings.embed_query(query)
        timings["embed_ms"] = _ms(t)
    with transaction.atomic(), connection.cursor() as cursor:
        if mode in ("vector", "hybrid"):
            t = time.perf_counter()
            scope = _readable_chunks(cursor, allowed, settings.RETRIEVAL_LEXICAL_TIMEOUT_MS)
            exact = scope is not None and scope <= settings.RETRIEVAL_EXACT_SEARCH_MAX_CHUNKS
            vector_scores = _vector_scores(cursor, vector, allowed, pool, ef_search, exact=exact)
            rankings["vector"] = [chunk_id for chunk_id, _ in vector_scores]
            timings["vector_ms"] = _ms(t)
        if mode in ("lexical", "hybrid"):
            t = time.perf_counter()
            timeout = settings.RETRIEVAL_LEXICAL_TIMEOUT_MS if mode == "hybrid" else 0
            lexical = _lexical_hits(
                cursor, query, allowed, pool, timeout, max_df=LEXICAL_MAX_DF[mode]
            )
            timings["lexical_ms"] = _ms(t)
            if lexical is None:
                timings["lexical_timed_out"] = True
        if mode == "hybrid" and HYBRID_FUSION == "score":
            fused, rankings["lexical"] = fuse_scores(vector_scores, lexical)
        elif mode == "hybrid":
            fused, rankings["lexical"] = fuse_hybrid(
                rankings["vector"], lexical, shape=query_shape(query)
            )
        else:
            if mode == "lexical":
                rankings["lexical"] = [h.chunk_id for h in lexical or ()]
            fused = fuse(rankings)
        hits = _load_hits(cursor, fused[:k], rankings, allowed, vector)
        if len(hits) < k and len(fused) > k:
            # Some of the best were pages marked gone (left out by the details query): the
            # rest of the pool fills their places, so a withdrawn page never costs results.
            more = _load_hits(cursor, fused[k:], rankings, allowed, vector)
            hits += more[: k - len(hits)]
        if neighbours and hits:
            _attach_neighbours(cursor, hits, allowed)
    timings["total_ms"] = _ms(started)
    return SearchResult(hits, mode, timings, query_vector=vector, knowledge_versions=versions)


def _load_hits(cursor, fused, rankings, allowed, vector) -> list[SearchHit]:
    ids = [chunk_id for chunk_id, _ in fused]
    if not ids:
        return []
    literal = _vector_literal(vector) if vector is not None else None
    cursor.execute(_DETAILS_SQL, {"ids": ids, "collections": allowed, "vec": literal})
    rows = {row[0]: row for row in cursor.fetchall()}
    positions = {
        name: {cid: i for i, cid in enumerate(ranked, 1)} for name, ranked in rankings.items()
    }
    hits = []
    for chunk_id, score in fused:
        row = rows.get(chunk_id)
        if row is None:
            continue
        hits.append(
            SearchHit(
                chunk_id=row[0],
                source_id=row[1],
                collection_id=row[2],
                ordinal=row[3],
                text=row[4],
                heading_path=_json_list(row[5]),
                page=row[6],
                document_title=row[7],
                source_name=row[8],
                source_url=row[9],
                score=score,
                similarity=None if row[10] is None else float(row[10]),
                vector_rank=positions.get("vector", {}).get(chunk_id),
                lexical_rank=positions.get("lexical", {}).get(chunk_id),
            )
        )
    return hits


def _attach_neighbours(cursor, hits: list[SearchHit], allowed) -> None:
    sources, ordinals = [], []
    for hit in hits:
        for ordinal in (hit.ordinal - 1, hit.ordinal + 1):
            if ordinal >= 0:
                sources.append(hit.source_id)
                ordinals.append(ordinal)
    cursor.execute(
        _NEIGHBOURS_SQL, {"sources": sources, "ordinals": ordinals, "collections": allowed}
    )
    texts = {(row[0], row[1]): row[2] for row in cursor.fetchall()}
    for hit in hits:
        hit.before = texts.get((hit.source_id, hit.ordinal - 1), "")
        hit.after = texts.get((hit.source_id, hit.ordinal + 1), "")


def _json_list(value) -> list[str]:
    # Django has psycopg hand jsonb back as text (it decodes in the ORM); raw SQL gets the text.
    if isinstance(value, str):
        value = json.loads(value)
    return [str(item) for item in value or []]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
