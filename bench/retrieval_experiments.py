"""Retrieval quality experiments on the Django docs eval set (not a benchmark of speed).

    VAR_DIR=var/bench EMBEDDED_LLM=0 EMBEDDED_REDIS_PORT=6397 \
        .venv/bin/python -m assistant.embedded services -- python bench/retrieval_experiments.py

Needs the collection ``bench/ingest.py`` leaves behind. For each of the 80 questions it fetches,
once, a vector ranking and several lexical rankings (SQL copies of ``knowledge/retrieval.py``
with one thing changed each), then scores fusions of them in Python, with the evaluation's
metric (the rank of the first chunk whose page is an expected source; recall@1/5/10 and MRR),
overall and per question kind. The first rows re-run ``search_chunks_for_user`` itself and the
copy of the current code, which must agree, so the variants are compared with the real thing.

Results: printed, and written to ``$VAR_DIR/results/retrieval_experiments.json``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

POOL = 100  # fetched once; variants slice their own pool from it
ORIGINAL = "or_cd1 (original)"  # OR of the lexemes, ts_rank_cd: the code before 8a02586
PRODUCT = "product (knowledge.retrieval)"  # whatever _LEXICAL_SQL is now, read at run time
DEPTH = 10  # ranks scored (recall@10)

# -- lexical SQL variants -------------------------------------------------------------------

_OR_QUERY = """(SELECT to_tsquery('english', string_agg(quote_literal(lexeme), ' | '))
    FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) AS lexeme)"""
_AND_QUERY = """(SELECT to_tsquery('english', string_agg(quote_literal(lexeme), ' & '))
    FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) AS lexeme)"""
_PHRASE_QUERY = "phraseto_tsquery('english', %(text)s)"


def lexical_sql(query: str, rank: str) -> str:
    return f"""
WITH q AS (SELECT {query} AS query)
SELECT c.id, {rank} AS rank
FROM knowledge_chunk c, q
WHERE q.query IS NOT NULL AND numnode(q.query) > 0
  AND c.collection_id = ANY(%(collections)s)
  AND c.search_vector @@ q.query
ORDER BY rank DESC, c.id
LIMIT %(limit)s
"""


# Coverage: how many distinct query lexemes a chunk contains, weighted by their rarity
# (idf = ln(N / (1 + chunks holding the lexeme)), from ts_stat over the searched chunks), then
# cover density as the tie-breaker. ``max_df`` drops lexemes found in more than that share of
# the chunks from the query (unless that would leave none): they weigh almost nothing and
# make the OR query match, and rank, most of the table. ``title_boost`` adds that share of
# a lexeme's idf again when it is in the title or headings (weight A).
def idf_sql(max_df: float = 1.0, title_boost: float = 0.0, max_terms: int = 0) -> str:
    boost = (
        f" + {title_boost} * (c.search_vector @@ (quote_literal(w.lexeme) || ':A')::tsquery)::int"
        if title_boost
        else ""
    )
    return f"""
WITH lex AS (
    SELECT DISTINCT lexeme FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) AS lexeme
), idf AS (
    SELECT lex.lexeme, greatest(ln(%(n)s::float / (1 + coalesce(s.ndoc, 0))), 0) AS idf
    FROM lex LEFT JOIN bench_lexstats s ON s.word = lex.lexeme
), w AS (
    SELECT * FROM idf WHERE idf >= ln(1 / {max_df}::float)
       OR NOT EXISTS (SELECT 1 FROM idf WHERE idf >= ln(1 / {max_df}::float))
    ORDER BY idf DESC {f"LIMIT {max_terms}" if max_terms else ""}
), q AS (
    SELECT to_tsquery('english', string_agg(quote_literal(lexeme), ' | ')) AS query FROM w
)
SELECT c.id,
       (SELECT coalesce(sum(w.idf * ((c.search_vector @@ quote_literal(w.lexeme)::tsquery)::int{boost})), 0)
          FROM w) AS cover,
       ts_rank_cd(c.search_vector, q.query, 1) AS rank
FROM knowledge_chunk c, q
WHERE q.query IS NOT NULL
  AND c.collection_id = ANY(%(collections)s)
  AND c.search_vector @@ q.query
ORDER BY cover DESC, rank DESC, c.id
LIMIT %(limit)s
"""


_IDF_SQL = idf_sql()


# The same ranking computed term at a time: one GIN lookup per kept lexeme gives the ids that
# hold it, the idfs are summed per id, and only the best 200 ids get their tsvector read
# (for the cover-density tie-breaker). No tsvector is detoasted for the bulk of the matches.
def idf_taat_sql(max_df: float = 0.05, max_terms: int = 0) -> str:
    return f"""
WITH lex AS (
    SELECT DISTINCT lexeme FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) AS lexeme
), idf AS (
    SELECT lex.lexeme, greatest(ln(%(n)s::float / (1 + coalesce(s.ndoc, 0))), 0) AS idf
    FROM lex LEFT JOIN bench_lexstats s ON s.word = lex.lexeme
), w AS (
    SELECT * FROM idf WHERE idf >= ln(1 / {max_df}::float)
       OR NOT EXISTS (SELECT 1 FROM idf WHERE idf >= ln(1 / {max_df}::float))
    ORDER BY idf DESC {f"LIMIT {max_terms}" if max_terms else ""}
), q AS (
    SELECT to_tsquery('english', string_agg(quote_literal(lexeme), ' | ')) AS query FROM w
), scored AS (
    SELECT m.id, sum(w.idf) AS cover
    FROM w CROSS JOIN LATERAL (
        SELECT c.id FROM knowledge_chunk c
        WHERE c.search_vector @@ quote_literal(w.lexeme)::tsquery
          AND c.collection_id = ANY(%(collections)s)
    ) m
    GROUP BY m.id
    ORDER BY cover DESC, m.id
    LIMIT 200
)
SELECT s.id, s.cover, ts_rank_cd(c.search_vector, q.query, 1) AS rank
FROM scored s JOIN knowledge_chunk c ON c.id = s.id, q
ORDER BY s.cover DESC, rank DESC, s.id
LIMIT %(limit)s
"""


# Term at a time with document frequencies counted in the same statement (no statistics table,
# and only over the collections this user may read, so nothing leaks): one GIN lookup per
# query lexeme gives the ids holding it, which are both its df and its postings.
def idf_taat_live_sql(max_df: float = 0.05) -> str:
    return f"""
WITH lex AS (
    SELECT DISTINCT lexeme FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) AS lexeme
), total AS (
    SELECT count(*)::float AS n FROM knowledge_chunk WHERE collection_id = ANY(%(collections)s)
), m AS MATERIALIZED (
    SELECT lex.lexeme, c.id
    FROM lex CROSS JOIN LATERAL (
        SELECT c.id FROM knowledge_chunk c
        WHERE c.search_vector @@ quote_literal(lex.lexeme)::tsquery
          AND c.collection_id = ANY(%(collections)s)
    ) c
), idf AS (
    SELECT m.lexeme, count(*) AS df, greatest(ln(total.n / (1 + count(*))), 0) AS idf
    FROM m, total GROUP BY m.lexeme, total.n
), w AS (
    SELECT idf.* FROM idf, total WHERE idf.df <= {max_df} * total.n
       OR NOT EXISTS (SELECT 1 FROM idf, total WHERE idf.df <= {max_df} * total.n)
), q AS (
    SELECT to_tsquery('english', string_agg(quote_literal(lexeme), ' | ')) AS query FROM w
), scored AS (
    SELECT m.id, sum(w.idf) AS cover
    FROM m JOIN w USING (lexeme)
    GROUP BY m.id
    ORDER BY cover DESC, m.id
    LIMIT 200
)
SELECT s.id, s.cover, ts_rank_cd(c.search_vector, q.query, 1) AS rank
FROM scored s JOIN knowledge_chunk c ON c.id = s.id, q
ORDER BY s.cover DESC, rank DESC, s.id
LIMIT %(limit)s
"""


LEXICAL = {
    ORIGINAL: lexical_sql(_OR_QUERY, "ts_rank_cd(c.search_vector, q.query, 1)"),
    "or_cd0": lexical_sql(_OR_QUERY, "ts_rank_cd(c.search_vector, q.query, 0)"),
    "or_cd32": lexical_sql(_OR_QUERY, "ts_rank_cd(c.search_vector, q.query, 32)"),
    "or_rank1": lexical_sql(_OR_QUERY, "ts_rank(c.search_vector, q.query, 1)"),
    "or_rank0": lexical_sql(_OR_QUERY, "ts_rank(c.search_vector, q.query, 0)"),
    "and_cd1": lexical_sql(_AND_QUERY, "ts_rank_cd(c.search_vector, q.query, 1)"),
    "phrase_cd1": lexical_sql(_PHRASE_QUERY, "ts_rank_cd(c.search_vector, q.query, 1)"),
    "or_idf_cover": _IDF_SQL,
    "or_idf_cover df<20%": idf_sql(max_df=0.2),
    "or_idf_cover df<5%": idf_sql(max_df=0.05),
    "or_idf_cover title+0.5": idf_sql(title_boost=0.5),
    "or_idf_cover df<20% title+0.5": idf_sql(max_df=0.2, title_boost=0.5),
    "or_idf_cover df<5% top4": idf_sql(max_df=0.05, max_terms=4),
    "or_idf_cover df<5% top6": idf_sql(max_df=0.05, max_terms=6),
    "or_idf_cover df<2% top6": idf_sql(max_df=0.02, max_terms=6),
    "idf_taat df<5%": idf_taat_sql(max_df=0.05),
    "idf_taat df<20%": idf_taat_sql(max_df=0.2),
    "idf_taat": idf_taat_sql(max_df=1.0),
    "idf_taat_live df<5%": idf_taat_live_sql(max_df=0.05),
    "idf_taat_live": idf_taat_live_sql(max_df=1.0),
}


def build_lexstats(collections) -> tuple[int, float]:
    """Lexeme document frequencies over the searched chunks (what a maintained table or
    materialized view would hold in production); returns the chunk count and build seconds."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_lexstats")
        cursor.execute(
            "CREATE TABLE bench_lexstats AS SELECT word, ndoc FROM ts_stat("
            "'SELECT search_vector FROM knowledge_chunk WHERE collection_id = ANY(ARRAY["
            + ",".join(str(int(c)) for c in collections)
            + "]::bigint[])')"
        )
        cursor.execute("CREATE INDEX ON bench_lexstats (word)")
        cursor.execute(
            "SELECT count(*) FROM knowledge_chunk WHERE collection_id = ANY(%s)", [collections]
        )
        n_chunks = cursor.fetchone()[0]
    return n_chunks, time.perf_counter() - started


def fetch_rankings(questions, collections, embedder) -> list[dict[str, list[int]]]:
    """Per question: the real vector ranking and every lexical variant's, POOL deep."""
    from django.db import connection, transaction

    from knowledge import retrieval

    n_chunks, _ = build_lexstats(collections)
    LEXICAL[PRODUCT] = retrieval._LEXICAL_SQL
    out = []
    for item in questions:
        q = item["question"]
        rankings = {}
        with transaction.atomic(), connection.cursor() as cursor:
            vec = embedder.embed_query(q)
            rankings["vector"] = retrieval._vector_ranking(cursor, vec, collections, POOL, 80)
            for name, sql in LEXICAL.items():
                cursor.execute(
                    sql, {"text": q, "collections": collections, "limit": POOL, "n": n_chunks}
                )
                rankings[name] = [row[0] for row in cursor.fetchall()]
            # AND first, then the OR results not already in it.
            seen = set(rankings["and_cd1"])
            rankings["and_then_or"] = rankings["and_cd1"] + [
                c for c in rankings[ORIGINAL] if c not in seen
            ]
            seen = set(rankings["phrase_cd1"])
            rankings["phrase_then_or"] = rankings["phrase_cd1"] + [
                c for c in rankings[ORIGINAL] if c not in seen
            ]
            seen = set(rankings["phrase_cd1"])
            rankings["phrase_then_idf"] = rankings["phrase_cd1"] + [
                c for c in rankings["or_idf_cover"] if c not in seen
            ]
            seen = set(rankings["and_cd1"])
            rankings["and_then_idf"] = rankings["and_cd1"] + [
                c for c in rankings["or_idf_cover"] if c not in seen
            ]
        out.append(rankings)
    drop_lexstats()
    return out


def drop_lexstats() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_lexstats")


# -- fusion ---------------------------------------------------------------------------------

IDENTIFIER = re.compile(r"[_{}%()]|[a-z][A-Z]|^[A-Z][a-z]+[A-Z]|\w\.\w")


def looks_like_identifier(query: str) -> bool:
    """Short, and carrying a code-shaped token (snake_case, CamelCase, {% tag %}, a.b)."""
    words = query.split()
    return len(words) <= 4 and (bool(IDENTIFIER.search(query)) or len(words) == 1)


def rrf(rankings: dict[str, list[int]], weights: dict[str, float], k: int, pools: dict[str, int]):
    scores: dict[int, float] = {}
    for name, weight in weights.items():
        for rank, cid in enumerate(rankings[name][: pools.get(name, 40)], 1):
            scores[cid] = scores.get(cid, 0.0) + weight / (k + rank)
    return [cid for cid, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def per_source_cap(ids: list[int], source_of: dict[int, int], cap: int) -> list[int]:
    counts: dict[int, int] = {}
    out = []
    for cid in ids:
        s = source_of.get(cid)
        counts[s] = counts.get(s, 0) + 1
        if counts[s] <= cap:
            out.append(cid)
    return out


COMBINED = ["and_then_or", "phrase_then_or", "and_then_idf", "phrase_then_idf"]
IDF_FAMILY = [
    "or_idf_cover",
    "or_idf_cover df<20%",
    "or_idf_cover df<5%",
    "or_idf_cover title+0.5",
    "or_idf_cover df<20% title+0.5",
    "or_idf_cover df<5% top4",
    "or_idf_cover df<5% top6",
    "or_idf_cover df<2% top6",
    "idf_taat df<5%",
    "idf_taat df<20%",
    "idf_taat",
    "idf_taat_live df<5%",
    "idf_taat_live",
    "and_then_idf",
    "phrase_then_idf",
]


def variants() -> dict[str, tuple[Callable, str | None]]:
    """name -> (f(rankings, question) -> fused ids, the lexical ranking it uses).

    RRF k=60 and pools of 40 (the current defaults) unless the name says otherwise."""

    def hybrid(lex, weight=1.0, k=60, pools=None):
        return lambda r, q: rrf(r, {"vector": 1, lex: weight}, k, pools or {})

    v: dict[str, tuple[Callable, str | None]] = {
        "vector only": (lambda r, q: r["vector"][:40], None),
        "lexical only (product)": (lambda r, q: r[PRODUCT][:40], PRODUCT),
        "hybrid (product copy)": (hybrid(PRODUCT), PRODUCT),
    }
    for lex in [*LEXICAL, *COMBINED]:
        if lex != PRODUCT:
            v[f"lexical only: {lex}"] = ((lambda r, q, lex=lex: r[lex][:40]), lex)
            v[f"hybrid: {lex}"] = (hybrid(lex), lex)
    for w in (0.3, 0.5, 0.7):
        v[f"hybrid: lexical weight {w}"] = (hybrid(PRODUCT, weight=w), PRODUCT)
    for k in (5, 20):
        v[f"hybrid: rrf k={k}"] = (hybrid(PRODUCT, k=k), PRODUCT)
    for pool in (10, 20, 100):
        v[f"hybrid: pools {pool}"] = (
            hybrid(PRODUCT, pools={"vector": pool, PRODUCT: pool}),
            PRODUCT,
        )
    for pool in (5, 10, 20):
        v[f"hybrid: lexical pool {pool}"] = (hybrid(PRODUCT, pools={PRODUCT: pool}), PRODUCT)
    for lex in IDF_FAMILY + ["and_then_or"]:
        for w in (0.5, 0.7):
            v[f"hybrid: {lex} weight {w}"] = (hybrid(lex, weight=w), lex)
        for pool in (5, 10, 20):
            v[f"hybrid: {lex}, lexical pool {pool}"] = (hybrid(lex, pools={lex: pool}), lex)
    # Query-shaped weights: identifiers lean on the lexical side, questions on the vector side.
    for lex in (PRODUCT, "or_idf_cover", "and_then_idf", "and_then_or"):
        for wi, wn in ((1.0, 0.5), (1.5, 0.5), (2.0, 0.5), (1.5, 0.3), (2.0, 0.7)):
            v[f"adaptive: {lex} id×{wi} nat×{wn}"] = (
                lambda r, q, lex=lex, wi=wi, wn=wn: rrf(
                    r, {"vector": 1, lex: wi if looks_like_identifier(q) else wn}, 60, {}
                ),
                lex,
            )
    return v


def first_rank(ids: list[int], name_of: dict[int, str], expected: set[str]) -> int | None:
    for rank, cid in enumerate(ids[:DEPTH], 1):
        if name_of.get(cid) in expected:
            return rank
    return None


def score(ranks: list[int | None]) -> dict:
    n = len(ranks) or 1
    out = {f"r@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 5, 10)}
    out["mrr"] = sum(1 / r for r in ranks if r) / n
    return out


LATENCY_VARIANTS = [
    PRODUCT,
    ORIGINAL,
    "or_idf_cover",
    "or_idf_cover df<20%",
    "or_idf_cover df<5%",
    "or_idf_cover df<5% title+0.5",
    "or_idf_cover df<5% top4",
    "or_idf_cover df<5% top6",
    "or_idf_cover df<2% top6",
    "idf_taat df<5%",
    "idf_taat df<20%",
    "idf_taat",
    "idf_taat_live df<5%",
    "idf_taat_live",
    "and_cd1",
    "phrase_cd1",
]


def latency(database: str, repeats: int) -> int:
    """Time the lexical SQL variants on a big database (``retrieval.py --keep``), as the
    benchmark's reader (mixed access), the variants interleaved per question."""
    common.setup_django(migrate=False, database_url=common.database_url(database))
    from django.contrib.auth import get_user_model
    from django.db import connection

    from knowledge.selectors import readable_collection_ids

    user = get_user_model().objects.get(email="bench-reader@example.com")
    collections = readable_collection_ids(user)
    n_chunks, built = build_lexstats(collections)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM knowledge_chunk")
        total = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM bench_lexstats")
        words = cursor.fetchone()[0]
    print(
        f"{database}: {total:,} chunks, {n_chunks:,} readable; lexeme statistics "
        f"(ts_stat, {words:,} lexemes) built in {built:.1f} s\n"
    )
    from knowledge import retrieval

    sql = {
        **LEXICAL,
        PRODUCT: retrieval._LEXICAL_SQL,
        "or_idf_cover df<5% title+0.5": idf_sql(max_df=0.05, title_boost=0.5),
    }
    questions = [q["question"] for q in common.load_questions()]
    samples = {name: [] for name in LATENCY_VARIANTS}
    rows = {name: [] for name in LATENCY_VARIANTS}
    with connection.cursor() as cursor:
        for rep in range(repeats + 1):  # the first pass warms the caches
            for i, q in enumerate(questions):
                order = (
                    LATENCY_VARIANTS[i % len(LATENCY_VARIANTS) :]
                    + LATENCY_VARIANTS[: i % len(LATENCY_VARIANTS)]
                )
                for name in order:
                    t = time.perf_counter()
                    cursor.execute(
                        sql[name],
                        {"text": q, "collections": collections, "limit": 40, "n": n_chunks},
                    )
                    got = cursor.fetchall()
                    if rep:
                        samples[name].append(time.perf_counter() - t)
                        rows[name].append(len(got))
    drop_lexstats()
    base = common.summary_ms(samples[PRODUCT])
    table = []
    for name in LATENCY_VARIANTS:
        s = common.summary_ms(samples[name])
        table.append(
            [
                name,
                common.ratio(s["p50_ms"], base["p50_ms"]),
                s["p50_ms"],
                s["p99_ms"],
                round(sum(rows[name]) / len(rows[name]), 1),
            ]
        )
    print(
        common.markdown_table(["lexical SQL", "p50 ÷ product", "p50 ms", "p99 ms", "rows"], table)
    )
    common.write_json(
        common.results_dir() / "retrieval_experiments_latency.json",
        {
            "database": database,
            "chunks": total,
            "readable": n_chunks,
            "lexstats_build_s": round(built, 2),
            "lexemes": words,
            "latency": {name: common.summary_ms(v) for name, v in samples.items()},
        },
    )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qa", type=Path, default=common.QA_FILE)
    parser.add_argument("--top", type=int, default=25, help="variants shown, best MRR first")
    parser.add_argument("--cap", type=int, default=0, help="also try at most N chunks per page")
    parser.add_argument(
        "--latency-db",
        help="instead: time the lexical SQL variants in this database (e.g. "
        "assistant_bench_retrieval, left by `bench/retrieval.py --keep`)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="with --latency-db")
    args = parser.parse_args(argv)
    common.require_services()
    if args.latency_db:
        return latency(args.latency_db, args.repeats)
    common.setup_django()
    from django.contrib.auth import get_user_model

    from knowledge import embeddings
    from knowledge.models import Chunk, Collection
    from knowledge.retrieval import search_chunks_for_user

    collections = list(
        Collection.objects.filter(name__startswith="bench-ingest").values_list("pk", flat=True)
    )
    if not collections:
        raise SystemExit("no bench-ingest collection: run bench/ingest.py first")
    questions = common.load_questions(args.qa)
    rows = Chunk.objects.filter(collection_id__in=collections).values_list(
        "pk", "source__name", "source_id"
    )
    name_of = {pk: name for pk, name, _ in rows}
    source_of = {pk: sid for pk, _, sid in rows}
    embedder = embeddings.get_embedder()
    rankings = fetch_rankings(questions, collections, embedder)

    # The real function, as `manage.py evaluate` calls it, for the sanity rows.
    user = get_user_model().objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
    real = {}
    for mode in ("vector", "lexical", "hybrid"):
        real[f"search_chunks_for_user({mode})"] = [
            [
                h.chunk_id
                for h in search_chunks_for_user(
                    user=user,
                    query=it["question"],
                    k=DEPTH,
                    mode=mode,
                    neighbours=False,
                    collection_ids=collections,
                ).hits
            ]
            for it in questions
        ]

    kinds = sorted({it.get("kind", "natural") for it in questions})
    table = {}

    def evaluate(name, fused_lists):
        ranks = [
            first_rank(ids, name_of, set(it["expected_sources"]))
            for ids, it in zip(fused_lists, questions, strict=True)
        ]
        entry = {"all": score(ranks)}
        for kind in kinds:
            entry[kind] = score(
                [
                    r
                    for r, it in zip(ranks, questions, strict=True)
                    if it.get("kind", "natural") == kind
                ]
            )
        entry["misses"] = [
            it["question"] for r, it in zip(ranks, questions, strict=True) if r is None or r > 5
        ]
        table[name] = entry

    for name, lists in real.items():
        evaluate(name, lists)
    lexical_of = {}
    for name, (fn, lex) in variants().items():
        lexical_of[name] = lex
        evaluate(name, [fn(r, it["question"]) for r, it in zip(rankings, questions, strict=True)])
        if args.cap:
            evaluate(
                f"{name} [cap {args.cap}/page]",
                [
                    per_source_cap(fn(r, it["question"]), source_of, args.cap)
                    for r, it in zip(rankings, questions, strict=True)
                ],
            )

    headers = (
        ["variant", "MRR", "R@1", "R@5", "R@10"]
        + [f"{k} MRR" for k in kinds]
        + [f"{k} R@5" for k in kinds]
        + ["beats both?"]
    )

    def own_lexical(name):
        lex = lexical_of.get(name)
        if lex is None or name.startswith("lexical only"):
            return None
        return "lexical only (product)" if lex == PRODUCT else f"lexical only: {lex}"

    def row(name):
        e = table[name]
        single = [table["vector only"]]
        if (lexical := own_lexical(name)) is not None:
            single.append(table[lexical])
        elif name == "search_chunks_for_user(hybrid)":
            single.append(table["lexical only (product)"])
        beats = len(single) == 2 and all(
            e["all"][m] > b["all"][m] for b in single for m in ("mrr", "r@5")
        )
        return (
            [
                name,
                round(e["all"]["mrr"], 3),
                round(e["all"]["r@1"], 3),
                round(e["all"]["r@5"], 3),
                round(e["all"]["r@10"], 3),
            ]
            + [round(e[k]["mrr"], 3) for k in kinds]
            + [round(e[k]["r@5"], 3) for k in kinds]
            + ["yes" if beats else ("no" if len(single) == 2 else "-")]
        )

    fixed = [
        *real,
        "vector only",
        "lexical only (product)",
        "hybrid (product copy)",
        f"lexical only: {ORIGINAL}",
        f"hybrid: {ORIGINAL}",
    ]
    counts = ", ".join(
        f"{sum(1 for q in questions if q.get('kind', 'natural') == k)} {k}" for k in kinds
    )
    print(f"{len(questions)} questions ({counts}); {len(name_of)} chunks")
    print("'beats both?': MRR and recall@5 above vector only AND above the lexical ranking it")
    print("fuses, used alone (a changed lexical side changes the lexical mode too)\n")
    print(common.markdown_table(headers, [row(n) for n in fixed]))
    singles = sorted(n for n in table if n.startswith("lexical only:"))
    print("\nlexical variants alone:\n")
    print(common.markdown_table(headers, [row(n) for n in singles]))
    ranked = sorted(
        (n for n in table if n not in fixed and n not in singles),
        key=lambda n: (-table[n]["all"]["mrr"], -table[n]["all"]["r@5"]),
    )
    print(f"\nfusion variants, best MRR first (top {args.top} of {len(ranked)}):\n")
    print(common.markdown_table(headers, [row(n) for n in ranked[: args.top]]))
    out = common.results_dir() / "retrieval_experiments.json"
    common.write_json(out, table)
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
