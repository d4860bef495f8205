"""Retrieval quality experiments: fusion variants scored on a question set (not a speed test).

    VAR_DIR=var/bench EMBEDDED_LLM=0 EMBEDDED_REDIS_PORT=6397 \
        .venv/bin/python -m assistant.embedded services -- python bench/retrieval_experiments.py \
        --qa bench/eval/django_docs.jsonl --name django-docs \
        [--unanswerable bench/eval/django_unanswerable.jsonl]

Needs the corpus's collection that ``bench/ingest.py --name NAME`` leaves behind. For each
question it fetches, once, the product's vector ranking (with similarities) and its lexical
rankings (``knowledge.retrieval``'s own SQL: the hybrid side, which drops common lexemes, and
the lexical-only side), then scores fusions of them in Python with the evaluation's metric (the
rank of the first chunk whose page is an expected source; recall@1/5/10 and MRR), overall and
per question kind. Every variant goes through ``knowledge.retrieval.fuse_hybrid`` with other
``Fusion`` rules, so nothing here copies the product's code; the first row re-runs
``search_chunks_for_user`` itself, and the "product" row must agree with it.

``--unanswerable FILE`` (questions near the corpus that it does not answer) adds the
distribution of the best passage's similarity for answerable and unanswerable questions, and,
per ``RETRIEVAL_MIN_SIMILARITY`` candidate, how many of each would reach the model.

Tune on one corpus, report on the other: the output says which rule the product uses now.
Results: printed, and written to ``$VAR_DIR/results/retrieval_experiments-NAME.json``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

POOL = 40  # as search_chunks_for_user's default ``candidates``
DEPTH = 10  # ranks scored (recall@10)
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def fetch(questions, collections) -> list[dict]:
    """Per question: vector scores, the two lexical rankings and the query's shape."""
    from django.conf import settings
    from django.db import connection, transaction

    from knowledge import embeddings, retrieval

    embedder = embeddings.get_embedder()
    with connection.cursor() as cursor:
        scope = retrieval._readable_chunks(cursor, collections)
    product_exact = scope <= settings.RETRIEVAL_EXACT_SEARCH_MAX_CHUNKS
    print(
        f"{scope} readable chunks: the product searches vectors {'exactly' if product_exact else 'on the HNSW graph'}"
    )
    out = []
    timings: dict[str, list[float]] = {"walk": [], "exact": []}
    for item in questions:
        text = item["question"].strip()
        vector = embedder.embed_query(text)
        with transaction.atomic(), connection.cursor() as cursor:
            # Both ways of searching vectors: the HNSW walk, and the exact scan that the product
            # uses up to RETRIEVAL_EXACT_SEARCH_MAX_CHUNKS readable chunks.
            started = time.perf_counter()
            walk = retrieval._vector_scores(cursor, vector, collections, POOL, 80)
            timings["walk"].append(time.perf_counter() - started)
            started = time.perf_counter()
            exact = retrieval._vector_scores(cursor, vector, collections, POOL, 80, exact=True)
            timings["exact"].append(time.perf_counter() - started)
            scores = exact if product_exact else walk
            hybrid_side = retrieval._lexical_hits(
                cursor, text, collections, POOL, 0, max_df=retrieval.LEXICAL_MAX_DF["hybrid"]
            )
            lexical_side = retrieval._lexical_ranking(
                cursor, text, collections, POOL, 0, max_df=retrieval.LEXICAL_MAX_DF["lexical"]
            )
        out.append(
            {
                "vector": [cid for cid, _ in scores],
                "vector_walk": [cid for cid, _ in walk],
                "similarity": dict(scores),
                "top_similarity": scores[0][1] if scores else 0.0,
                "lexical_hybrid": hybrid_side or [],
                "lexical": lexical_side or [],
                "shape": retrieval.query_shape(text),
            }
        )
    print(
        "vector search per question, p50 / p99 ms: "
        + ", ".join(
            f"{name} {common.percentile(v, 50) * 1000:.1f} / {common.percentile(v, 99) * 1000:.1f}"
            for name, v in timings.items()
        )
    )
    return out


def variants() -> dict:
    """Name -> function(fetched row) -> ranked chunk ids."""
    from knowledge.retrieval import FUSION, Fusion, fuse_hybrid, fuse_scores

    def rule(identifier: Fusion, natural: Fusion, vector: str = "vector"):
        rules = {"identifier": identifier, "natural": natural}
        return lambda row: [
            cid
            for cid, _ in fuse_hybrid(
                row[vector], row["lexical_hybrid"], shape=row["shape"], fusion=rules
            )[0]
        ]

    def normalised(alpha: float):
        # Score fusion (knowledge.retrieval.fuse_scores): cosine similarity plus alpha x the
        # share of the query's idf mass held.
        def ranked(row):
            vector_scores = [(cid, row["similarity"][cid]) for cid in row["vector"]]
            fused, _ = fuse_scores(vector_scores, row["lexical_hybrid"], weight=alpha)
            return [cid for cid, _ in fused]

        return ranked

    out = {
        "vector": lambda row: row["vector"],
        "lexical": lambda row: row["lexical"],
        "product hybrid (knowledge.retrieval.FUSION)": rule(
            FUSION["identifier"], FUSION["natural"]
        ),
        "landed hybrid (equal RRF)": rule(Fusion(1.0, 0.0), Fusion(1.0, 0.0)),
        "vector, HNSW walk": lambda row: row["vector_walk"],
        "product hybrid on the HNSW walk": rule(
            FUSION["identifier"], FUSION["natural"], "vector_walk"
        ),
    }
    for alpha in (0.05, 0.1, 0.2):
        out[f"similarity + {alpha} x coverage"] = normalised(alpha)
    for (iw, ic), (nw, nc) in itertools.product(
        itertools.product((0.5, 1.0), (0.0, 0.5)),
        itertools.product((0.0, 0.25, 0.5, 0.75, 1.0), (0.0, 0.3, 0.5, 0.7, 0.9)),
    ):
        if nw == 0.0 and nc:
            continue
        out[f"id w{iw} cov{ic} / natural w{nw} cov{nc}"] = rule(Fusion(iw, ic), Fusion(nw, nc))
    return out


def first_rank(ids, names_of, expected: set[str]) -> int | None:
    for rank, cid in enumerate(ids[:DEPTH], 1):
        if names_of.get(cid, set()) & expected:
            return rank
    return None


def score(ranks: list[int | None]) -> dict:
    n = len(ranks) or 1
    out = {f"r@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 5, 10)}
    out["mrr"] = sum(1 / r for r in ranks if r) / n
    return {key: round(value, 3) for key, value in out.items()}


def chunk_names(collections) -> dict[int, set[str]]:
    """What ``manage.py evaluate`` matches an expected source against, per chunk."""
    from knowledge.models import Chunk

    rows = Chunk.objects.filter(collection_id__in=collections).values_list(
        "pk", "source__name", "document__title", "source__url"
    )
    return {
        pk: {n for n in (name, PurePosixPath(name).name, title, url) if n}
        for pk, name, title, url in rows
    }


def similarity_report(answerable: list[dict], unanswerable: list[dict], kinds: list[str]) -> dict:
    """``kinds``: each unanswerable question's kind (near misses vs off-topic questions)."""
    good = sorted(row["top_similarity"] for row in answerable)
    bad = sorted(row["top_similarity"] for row in unanswerable)
    by_kind = {
        kind: [
            row["top_similarity"] for row, k in zip(unanswerable, kinds, strict=True) if k == kind
        ]
        for kind in sorted(set(kinds))
    }

    def quantiles(values):
        if len(values) < 2:
            return values
        q = statistics.quantiles(values, n=10, method="inclusive")
        return {"min": values[0], "p10": q[0], "p50": q[4], "p90": q[8], "max": values[-1]}

    # An answerable question keeps its answer when an expected passage among the prompt's
    # passages reaches the floor (the pipeline drops each passage below it).
    found = [row["answer_similarity"] for row in answerable]
    rows = []
    for t in THRESHOLDS:
        rows.append(
            [
                t,
                f"{sum(s >= t for s in good)}/{len(good)}",
                f"{sum(s is not None and s >= t for s in found)}/{len(found)}",
            ]
            + [f"{sum(s < t for s in values)}/{len(values)}" for values in by_kind.values()]
        )
    print("\nbest passage's similarity (cosine), answerable vs unanswerable:")
    print(f"  answerable   {_fmt(quantiles(good))}")
    for kind, values in by_kind.items():
        print(f"  unanswerable, {kind}: {_fmt(quantiles(sorted(values)))}")
    headers = [
        "RETRIEVAL_MIN_SIMILARITY",
        "answerable: some passage passes",
        "answerable: an expected passage passes (top-k)",
    ]
    print(common.markdown_table(headers + [f"{k} refused" for k in by_kind], rows))
    return {
        "answerable": quantiles(good),
        "unanswerable": quantiles(bad),
        "unanswerable_by_kind": by_kind,
        "thresholds": rows,
    }


def _fmt(q) -> str:
    if isinstance(q, dict):
        return " ".join(f"{k} {v:.3f}" for k, v in q.items())
    return str([round(v, 3) for v in q])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qa", type=Path, default=common.QA_FILE)
    parser.add_argument("--name", default="django-docs", help="the corpus's name, as for ingest")
    parser.add_argument("--unanswerable", type=Path, help="questions the corpus does not answer")
    parser.add_argument("--top", type=int, default=15, help="grid rows shown, best MRR first")
    args = parser.parse_args(argv)
    common.require_services()
    common.setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from bench.ingest import collection_name, reader_email
    from knowledge.models import Collection
    from knowledge.retrieval import search_chunks_for_user

    name = collection_name(args.name)
    collection = Collection.objects.filter(name=name).first()
    if collection is None:
        raise SystemExit(f"no collection {name!r}: run bench/ingest.py --name {args.name} first")
    collections = [collection.pk]
    questions = common.load_questions(args.qa)
    names_of = chunk_names(collections)
    fetched = fetch(questions, collections)
    reader = get_user_model().objects.get(email=reader_email(name))
    hybrid_hits = [
        search_chunks_for_user(user=reader, query=it["question"], k=DEPTH, neighbours=False).hits
        for it in questions
    ]
    product_hybrid = [[h.chunk_id for h in hits] for hits in hybrid_hits]
    # What the model is given: the first RETRIEVAL_TOP_K passages that pass the floor.
    for row, hits, it in zip(fetched, hybrid_hits, questions, strict=True):
        expected = {str(s) for s in it["expected_sources"]}
        row["answer_similarity"] = max(
            (
                h.similarity or 0.0
                for h in hits[: settings.RETRIEVAL_TOP_K]
                if names_of.get(h.chunk_id, set()) & expected
            ),
            default=None,
        )

    kinds = sorted({it.get("kind", "natural") for it in questions})
    table: dict[str, dict] = {}

    def evaluate(label, lists):
        ranks = [
            first_rank(ids, names_of, {str(s) for s in it["expected_sources"]})
            for ids, it in zip(lists, questions, strict=True)
        ]
        entry = {"all": score(ranks)}
        for kind in kinds:
            entry[kind] = score(
                [r for r, it in zip(ranks, questions, strict=True) if it.get("kind") == kind]
            )
        table[label] = entry

    evaluate("search_chunks_for_user(hybrid)", product_hybrid)
    for label, ranked in variants().items():
        evaluate(label, [ranked(row)[:DEPTH] for row in fetched])

    shapes = {
        kind: {
            shape: sum(
                1
                for it, row in zip(questions, fetched, strict=True)
                if it.get("kind") == kind and row["shape"] == shape
            )
            for shape in ("identifier", "natural")
        }
        for kind in kinds
    }
    print(f"{len(questions)} questions from {args.qa} over {name!r} ({len(names_of)} chunks)")
    print(f"query_shape by labelled kind: {shapes}")
    headers = ["variant", "R@1", "R@5", "R@10", "MRR"] + [
        f"{kind} {m}" for kind in kinds for m in ("R@5", "MRR")
    ]

    def line(label):
        e = table[label]
        return [label, *(e["all"][m] for m in ("r@1", "r@5", "r@10", "mrr"))] + [
            e[kind][m] for kind in kinds for m in ("r@5", "mrr")
        ]

    fixed = [label for label in table if not label.startswith("id w")]
    grid = sorted(
        (label for label in table if label.startswith("id w")),
        key=lambda label: -table[label]["all"]["mrr"],
    )
    print(common.markdown_table(headers, [line(label) for label in fixed]))
    print(f"\nfusion grid, best {args.top} by MRR:")
    print(common.markdown_table(headers, [line(label) for label in grid[: args.top]]))

    results = {"questions": len(questions), "collection": name, "shapes": shapes, "table": table}
    if args.unanswerable:
        others = common.load_questions(args.unanswerable)
        refused = fetch(others, collections)
        kinds = [it.get("kind") or "near_miss" for it in others]
        results["similarity"] = similarity_report(fetched, refused, kinds)
    out = common.results_dir() / f"retrieval_experiments-{args.name}.json"
    common.write_json(out, results)
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
