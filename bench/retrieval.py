"""Retrieval benchmark: 100k chunks with mixed access, real MiniLM vectors, real questions.

    VAR_DIR=var/bench EMBEDDED_LLM=0 EMBEDDED_REDIS_PORT=6397 \
        .venv/bin/python -m assistant.embedded services -- python bench/retrieval.py [--chunks 100000]

Data (in a dedicated database, ``assistant_bench_retrieval`` on the same server, dropped at
the end unless ``--keep``):

* **Seed**: ``--seed-chunks`` (default 3000) real chunks of the Django docs with their real
  all-MiniLM-L6-v2 vectors. They are read from the ingest benchmark's collection when it
  exists (``bench/ingest.py`` leaves it), otherwise pages are parsed, chunked and embedded here
  (cached in ``$VAR_DIR/results/``).
* **Corpus**: ``--chunks`` rows; row r copies seed ``r mod S``. The first copy of each seed is
  the original; every other copy has vector ``normalise(v + sigma * g)`` with ``g`` a standard
  Gaussian in 384 dimensions (``--sigma``, default 0.035: expected cosine to the seed about
  0.83, i.e. related passages, not duplicates) and a text variant (8% of words dropped, 5%
  replaced by words drawn from the seed vocabulary) so the tsvector side sees realistic term
  statistics. Rows are spread at random over five collections: one open to everyone, two
  shared with the benchmark user's group, two with a group the user is not in, so the user
  reads about 60% of the chunks and every query runs with a real access filter.
* Loaded with binary ``COPY`` into ``knowledge_chunk`` (the generated ``search_vector`` fills
  itself); the HNSW and GIN indexes are dropped before and rebuilt after with the migration's
  exact definitions.

Measured for the 80 questions of ``bench/eval/django_docs.jsonl`` (``--repeats`` passes, the
variants interleaved per question so load changes hit all of them alike):

(a) the raw pgvector SQL (``knowledge.retrieval._VECTOR_SQL``, same filter, LIMIT = the
    candidate pool, iterative scan relaxed_order, ef_search 80 set once per session) vs
(b) ``search_chunks_for_user(mode="vector")`` with the query vector precomputed (the model's
    query time is reported on its own), (c) hybrid vs vector, (d) lexical,
(e) the answering pipeline (``question_create`` + ``answer_stream``) up to the moment a local
    OpenAI-compatible server (``tests/support/openai_server.py``) receives the request, vs a
    hybrid search alone, both with the real embedding model,
and HNSW recall@10 against exact search (index scans off) for ef_search 40 / 80 / 200.

Results: printed, and written to ``$VAR_DIR/results/retrieval.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

DB_NAME = "assistant_bench_retrieval"
COLLECTIONS = [  # (name, visibility, readable by the benchmark user)
    ("bench-r everyone", "everyone", True),
    ("bench-r team-a", "groups", True),
    ("bench-r team-b", "groups", True),
    ("bench-r finance", "groups", False),
    ("bench-r legal", "groups", False),
]
SOURCE_SIZE = 40  # chunks per synthetic source (document)
EF_USED = 80  # search_chunks_for_user's default ef_search
POOL = 40  # search_chunks_for_user's default candidate pool


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--chunks",
        type=int,
        default=100_000,
        help="corpus size (1M needs ~20 GB of disk and an hour or more of HNSW build on 2 cores)",
    )
    p.add_argument("--seed-chunks", type=int, default=3000)
    p.add_argument("--sigma", type=float, default=0.035, help="per-dimension noise of copies")
    p.add_argument("--repeats", type=int, default=3, help="passes over the questions")
    p.add_argument("--pipeline-repeats", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the benchmark database")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="reuse a kept database when it was built with the same parameters",
    )
    p.add_argument("--json", type=Path, help="default: $VAR_DIR/results/retrieval.json")
    return p.parse_args(argv)


def database_url(name: str) -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{name}"))


def psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def main(argv=None) -> int:
    args = parse_args(argv)
    common.require_services()
    machine = common.machine_info()
    import psycopg

    main_url = os.environ["DATABASE_URL"]
    bench_url = database_url(DB_NAME)
    params = {"chunks": args.chunks, "seed": args.seed_chunks, "sigma": args.sigma}
    with psycopg.connect(psycopg_url(database_url("postgres")), autocommit=True) as admin:
        reuse = args.reuse and _kept_params(bench_url) == params
        if not reuse:
            admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {DB_NAME}")
    seed = load_seed(main_url, args.seed_chunks)
    common.setup_django(database_url=bench_url)
    print(common.machine_line(machine))
    print(
        f"{common.pg_version()}; {args.chunks:,} chunks from {len(seed['texts'])} real seed "
        f"chunks ({seed['origin']}), sigma {args.sigma}",
        flush=True,
    )
    user = make_user()
    build = {"reused": True} if reuse else load_corpus(args, seed, user)
    if not reuse:
        _save_params(params)
    try:
        results = measure(args, user, build, main_url)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(psycopg_url(database_url("postgres")), autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    results = {
        "machine": machine,
        "postgres": f"{results.pop('postgres')}",
        "params": params,
        "build": build,
        **results,
    }
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = args.json or common.results_dir() / "retrieval.json"
    common.write_json(out, results)
    print(f"\nwritten to {out}" + ("" if args.keep else f"; database {DB_NAME} dropped"))
    return 0


# --- seed: real chunks, real vectors ----------------------------------------------------------


def load_seed(main_url: str, count: int) -> dict:
    """Real chunk texts and their MiniLM vectors: from the ingest benchmark, else computed."""
    import numpy as np
    import psycopg
    from pgvector.psycopg import register_vector

    try:
        with psycopg.connect(psycopg_url(main_url)) as conn:
            register_vector(conn)
            rows = conn.execute(
                """SELECT c.text, c.context, c.heading_path, d.title, c.token_count, c.embedding
                   FROM knowledge_chunk c JOIN knowledge_document d ON d.id = c.document_id
                   JOIN knowledge_collection k ON k.id = c.collection_id
                   WHERE k.name LIKE 'bench-ingest%' ORDER BY c.id"""
            ).fetchall()
    except (psycopg.Error, Exception) as exc:  # no ingest run yet, or no vector type there
        print(f"(no ingest benchmark data to reuse: {type(exc).__name__})")
        rows = []
    if len(rows) >= count:
        picked = random.Random(7).sample(rows, count)
        return {
            "origin": "read from the ingest benchmark's collection",
            "texts": [r[0] for r in picked],
            "contexts": [r[1] for r in picked],
            "paths": [r[2] for r in picked],
            "titles": [r[3] for r in picked],
            "tokens": [r[4] for r in picked],
            "vectors": np.asarray([r[5].to_numpy() for r in picked], dtype=np.float32),
        }
    return compute_seed(count)


def compute_seed(count: int) -> dict:
    import numpy as np

    cache = common.results_dir() / f"retrieval-seed-{count}.npz"
    meta = cache.with_suffix(".json")
    if cache.exists() and meta.exists():
        data = json.loads(meta.read_text())
        data["vectors"] = np.load(cache)["vectors"]
        data["origin"] = f"cached in {cache.name}"
        return data
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.project.settings")
    from knowledge import parsing
    from knowledge.chunking import chunk_document
    from knowledge.embeddings.local import LocalEmbedder

    embedder = LocalEmbedder()
    pages = sorted(common.ensure_corpus().glob("*.html"))
    random.Random(7).shuffle(pages)
    data = {"texts": [], "contexts": [], "paths": [], "titles": [], "tokens": [], "embed": []}
    for page in pages:
        doc = parsing.parse_document(page.read_bytes(), filename=page.name)
        for d in chunk_document(
            doc, target_tokens=180, overlap_tokens=30, count_tokens=embedder.count_tokens
        ):
            data["texts"].append(d.text)
            data["contexts"].append(" › ".join([doc.title, *d.heading_path]))
            data["paths"].append(list(d.heading_path))
            data["titles"].append(doc.title)
            data["tokens"].append(d.token_count)
            data["embed"].append(d.embed_text)
        if len(data["texts"]) >= count:
            break
    for key in data:
        data[key] = data[key][:count]
    print(f"embedding {len(data['embed'])} seed chunks ...", flush=True)
    vectors = np.asarray(embedder.embed_documents(data.pop("embed")), dtype=np.float32)
    np.savez(cache, vectors=vectors)
    meta.write_text(json.dumps(data))
    data["vectors"] = vectors
    data["origin"] = "parsed, chunked and embedded here"
    return data


# --- the corpus --------------------------------------------------------------------------------


def make_user():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    users = get_user_model().objects
    user = users.filter(email="bench-reader@example.com").first() or users.create_user(
        email="bench-reader@example.com", password=None
    )
    readers, _ = Group.objects.get_or_create(name="bench-readers")
    Group.objects.get_or_create(name="bench-others")
    user.groups.add(readers)
    return user


def _kept_params(bench_url: str) -> dict | None:
    import psycopg

    try:
        with psycopg.connect(psycopg_url(bench_url)) as conn:
            row = conn.execute("SELECT params FROM bench_meta").fetchone()
            return row[0] if row else None
    except psycopg.Error:
        return None


def _save_params(params: dict) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_meta (params jsonb)")
        cursor.execute("DELETE FROM bench_meta")
        cursor.execute("INSERT INTO bench_meta VALUES (%s::jsonb)", [json.dumps(params)])


def vary_texts(texts: list[str], rng, vocab: list[str]) -> list[str]:
    out = []
    for text in texts:
        words = text.split(" ")
        draw = rng.random(len(words))
        picks = rng.integers(0, len(vocab), len(words))
        kept = [
            vocab[p] if d < 0.05 else w
            for w, d, p in zip(words, draw, picks, strict=True)
            if not (0.05 <= d < 0.13)
        ]
        out.append(" ".join(kept) or text)
    return out


def load_corpus(args, seed: dict, user) -> dict:
    import numpy as np
    import psycopg
    from django.contrib.auth.models import Group
    from django.db import connection
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    from knowledge.models import Collection, Document, Source

    started = time.perf_counter()
    readers, others = (
        Group.objects.get(name="bench-readers"),
        Group.objects.get(name="bench-others"),
    )
    collections = []
    for name, visibility, readable in COLLECTIONS:
        c = Collection.objects.create(name=name, visibility=visibility)
        if visibility == "groups":
            c.read_groups.add(readers if readable else others)
        collections.append(c)
    n, s = args.chunks, len(seed["texts"])
    rng = np.random.default_rng(11)
    owner = rng.integers(0, len(collections), n)
    # Sources of SOURCE_SIZE consecutive rows within a collection; documents titled by seed.
    position = np.zeros(n, dtype=np.int64)
    for ci in range(len(collections)):
        idx = np.nonzero(owner == ci)[0]
        position[idx] = np.arange(len(idx))
    source_key = owner * 10**9 + position // SOURCE_SIZE
    keys, first_row = np.unique(source_key, return_index=True)
    sources = Source.objects.bulk_create(
        [
            Source(
                collection=collections[int(k // 10**9)],
                kind="file",
                name=f"synthetic-{int(k % 10**9)}.html",
                status="ready",
                progress=100,
                chunk_count=SOURCE_SIZE,
            )
            for k in keys
        ],
        batch_size=2000,
    )
    documents = Document.objects.bulk_create(
        [
            Document(source=src, title=seed["titles"][int(r) % s][:500], text="", content_hash="x")
            for src, r in zip(sources, first_row, strict=True)
        ],
        batch_size=2000,
    )
    key_index = {int(k): i for i, k in enumerate(keys)}
    vocab = sorted(
        {w for t in seed["texts"][:2000] for w in t.split() if w.isalpha() and len(w) > 3}
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'knowledge_chunk' "
            "AND indexname IN ('chunk_embedding_hnsw', 'chunk_search_vector_gin', 'chunk_collection_source')"
        )
        index_defs = cursor.fetchall()
        for name, _ in index_defs:
            cursor.execute(f"DROP INDEX {name}")
    prepared = time.perf_counter()
    with psycopg.connect(psycopg_url(os.environ["DATABASE_URL"])) as conn:
        register_vector(conn)
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY knowledge_chunk (document_id, source_id, collection_id, ordinal, text, "
                "heading_path, page, token_count, context, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(
                ["int8", "int8", "int8", "int4", "text", "jsonb", "int4", "int4", "text", "vector"]
            )
            for block in range(0, n, 10_000):
                rows = np.arange(block, min(n, block + 10_000))
                seeds = rows % s
                vectors = seed["vectors"][seeds].copy()
                noisy = rows >= s  # the first copy of each seed is the original
                vectors[noisy] += args.sigma * rng.standard_normal(
                    (int(noisy.sum()), vectors.shape[1])
                ).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                texts = [seed["texts"][j] for j in seeds]
                varied = vary_texts([texts[i] for i in np.nonzero(noisy)[0]], rng, vocab)
                it = iter(varied)
                for i, r in enumerate(rows):
                    si = key_index[int(source_key[r])]
                    j = int(seeds[i])
                    copy.write_row(
                        [
                            documents[si].pk,
                            sources[si].pk,
                            collections[int(owner[r])].pk,
                            int(position[r] % SOURCE_SIZE),
                            next(it) if noisy[i] else texts[i],
                            Jsonb(seed["paths"][j] or []),
                            None,
                            int(seed["tokens"][j] or 0),
                            seed["contexts"][j],
                            vectors[i],
                        ]
                    )
        conn.commit()
    copied = time.perf_counter()
    timings = {}
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
        for name, definition in index_defs:
            t = time.perf_counter()
            cursor.execute(definition)
            timings[name] = round(time.perf_counter() - t, 1)
        cursor.execute("ANALYZE knowledge_chunk")
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('knowledge_chunk'))")
        size = cursor.fetchone()[0]
    build = {
        "rows": n,
        "sources": len(sources),
        "prepare_s": round(prepared - started, 1),
        "copy_s": round(copied - prepared, 1),
        "index_build_s": timings,
        "table_size": size,
    }
    print(
        f"loaded {n:,} chunks in {build['copy_s']} s (COPY) + indexes {timings} ({size})",
        flush=True,
    )
    return build


# --- measurements --------------------------------------------------------------------------


class CachedQueryEmbedder:
    """The real embedder, except that known queries return their precomputed vector."""

    def __init__(self, real, vectors: dict[str, list[float]]):
        self.real, self.vectors = real, vectors
        self.name, self.dimensions = real.name, real.dimensions

    def embed_query(self, text: str):
        hit = self.vectors.get(text)
        return hit if hit is not None else self.real.embed_query(text)

    def __getattr__(self, attr):
        return getattr(self.real, attr)


def measure(args, user, build, main_url) -> dict:
    import psycopg
    from django.conf import settings
    from pgvector.psycopg import register_vector

    from knowledge import embeddings, retrieval
    from knowledge.selectors import readable_collection_ids

    questions = [q["question"] for q in common.load_questions()]
    real = embeddings.get_embedder()
    real.embed_query("warm up")
    query_vectors, embed_times = {}, []
    for _ in range(args.repeats):
        for q in questions:
            t = time.perf_counter()
            query_vectors[q] = real.embed_query(q)
            embed_times.append(time.perf_counter() - t)
    allowed = readable_collection_ids(user)
    k = settings.RETRIEVAL_TOP_K

    raw = psycopg.connect(psycopg_url(os.environ["DATABASE_URL"]), autocommit=True)
    register_vector(raw)
    raw.execute("SET hnsw.iterative_scan = relaxed_order")
    raw.execute(f"SET hnsw.ef_search = {EF_USED}")

    def raw_vector(q):
        vec = retrieval._vector_literal(query_vectors[q])
        return raw.execute(
            retrieval._VECTOR_SQL, {"vec": vec, "collections": allowed, "limit": POOL}
        ).fetchall()

    def raw_lexical(q):
        return raw.execute(
            retrieval._LEXICAL_SQL,
            {
                "text": q,
                "collections": allowed,
                "limit": POOL,
                "max_df": retrieval.LEXICAL_MAX_DF["lexical"],
            },
        ).fetchall()

    def search(mode):
        return lambda q: retrieval.search_chunks_for_user(user=user, query=q, k=k, mode=mode)

    variants = {
        "raw_vector_sql": raw_vector,
        "search_vector": search("vector"),
        "search_hybrid": search("hybrid"),
        "search_lexical": search("lexical"),
        "raw_lexical_sql": raw_lexical,
    }
    embeddings._embedder = CachedQueryEmbedder(real, query_vectors)  # model time reported apart
    samples: dict[str, list[float]] = {name: [] for name in variants}
    rows_seen = {name: [] for name in variants}
    parts: dict[str, dict[str, list[float]]] = {name: {} for name in variants}
    timed_out = dict.fromkeys(variants, 0)  # hybrid answered from vectors alone (lexical timeout)
    try:
        for fn in variants.values():  # warm caches and connections
            for q in questions[:5]:
                fn(q)
        for rep in range(args.repeats):
            for i, q in enumerate(questions):
                order = list(variants)
                shift = (i + rep) % len(order)
                for name in order[shift:] + order[:shift]:
                    t = time.perf_counter()
                    out = variants[name](q)
                    samples[name].append(time.perf_counter() - t)
                    rows_seen[name].append(len(out.hits) if hasattr(out, "hits") else len(out))
                    raw_timings = getattr(out, "timings_ms", {})
                    if raw_timings.get("lexical_timed_out"):
                        timed_out[name] += 1
                    timings = {key: v for key, v in raw_timings.items() if key.endswith("_ms")}
                    if timings:  # what total_ms holds besides the named parts
                        timings["rest_ms"] = timings["total_ms"] - sum(
                            v for key, v in timings.items() if key != "total_ms"
                        )
                    for key, ms in timings.items():
                        parts[name].setdefault(key, []).append(ms)
    finally:
        embeddings._embedder = real
    stats = {name: common.summary_ms(v) for name, v in samples.items()}
    for name in stats:
        stats[name]["mean_rows"] = round(sum(rows_seen[name]) / len(rows_seen[name]), 1)
        stats[name]["lexical_timed_out"] = timed_out[name]
        if parts[name]:  # the function's own timings_ms, median of each part
            stats[name]["parts_p50_ms"] = {
                key: round(common.percentile(v, 50), 2) for key, v in parts[name].items()
            }
    stats["embed_query_model"] = common.summary_ms(embed_times)

    # Real model in the loop, as a user sees it.
    for mode in ("vector", "hybrid"):
        times = []
        for q in questions:
            t = time.perf_counter()
            retrieval.search_chunks_for_user(user=user, query=q, k=k, mode=mode)
            times.append(time.perf_counter() - t)
        stats[f"search_{mode}_with_model"] = common.summary_ms(times)

    pipeline = measure_pipeline(user, questions, args.pipeline_repeats)
    recall = measure_recall(raw, query_vectors, questions, allowed)
    recall_real = measure_recall_real(main_url, query_vectors, questions)
    raw.close()
    postgres = common.pg_version()

    def r(a, b, key="p50_ms"):
        return common.ratio(stats[a][key], stats[b][key])

    ratios = {
        "a_search_vector_over_raw_sql_p50": r("search_vector", "raw_vector_sql"),
        "a_search_vector_over_raw_sql_p99": r("search_vector", "raw_vector_sql", "p99_ms"),
        "c_hybrid_over_vector_p50": r("search_hybrid", "search_vector"),
        "c_hybrid_over_vector_p99": r("search_hybrid", "search_vector", "p99_ms"),
        "c_hybrid_over_vector_with_model_p50": r(
            "search_hybrid_with_model", "search_vector_with_model"
        ),
        "d_lexical_over_vector_p50": r("search_lexical", "search_vector"),
        "e_pipeline_to_llm_over_search_p50": pipeline["ratio_p50"],
    }
    print_report(stats, ratios, pipeline, recall, recall_real, len(questions), args, build)
    return {
        "postgres": postgres,
        "ratios": ratios,
        "latency": stats,
        "pipeline": pipeline,
        "recall": recall,
        "recall_real_collection": recall_real,
        "readable_collections": len(allowed),
    }


def measure_pipeline(user, questions: list[str], repeats: int) -> dict:
    """question_create + answer_stream until the LLM server receives the request."""
    from asgiref.sync import sync_to_async
    from django.conf import settings

    from assistant import llm, services
    from assistant.answering.pipeline import answer_stream
    from knowledge.retrieval import search_chunks_for_user
    from tests.support.openai_server import Reply, ScriptedOpenAI

    received: list[float] = []

    def stamp(request):
        received.append(time.perf_counter())
        return Reply(tokens=["Use the cache ", "decorator [1]."])

    async def run() -> dict:
        to_llm, search_alone = [], []
        with ScriptedOpenAI(default=None) as server:
            config = llm.LLMConfig(
                base_url=server.base_url, api_key="bench", model="bench", max_retries=0
            )
            for rep in range(repeats + 1):  # the first pass warms up, not counted
                for q in questions:
                    server.script(stamp)
                    t0 = time.perf_counter()
                    question = await sync_to_async(services.question_create)(
                        user=user, conversation=None, text=q
                    )
                    async for _event in answer_stream(user=user, question=question, config=config):
                        pass
                    sent = received[-1] - t0 if len(received) and received[-1] > t0 else None
                    t = time.perf_counter()
                    await sync_to_async(search_chunks_for_user)(
                        user=user, query=q, k=settings.RETRIEVAL_TOP_K
                    )
                    alone = time.perf_counter() - t
                    if rep and sent is not None:
                        to_llm.append(sent)
                        search_alone.append(alone)
            await llm.aclose_clients()
        return {"to_llm": to_llm, "search": search_alone}

    got = asyncio.run(run())
    to_llm, search = common.summary_ms(got["to_llm"]), common.summary_ms(got["search"])
    overhead = [a - b for a, b in zip(got["to_llm"], got["search"], strict=True)]
    return {
        "question_to_llm_request": to_llm,
        "hybrid_search_alone": search,
        "overhead_excluding_search": common.summary_ms(overhead),
        "ratio_p50": common.ratio(to_llm["p50_ms"], search["p50_ms"]),
        "requests_seen": len(got["to_llm"]),
    }


EF_CHECKED = (40, EF_USED, 200, 400)


def measure_recall(raw, query_vectors, questions, allowed) -> dict:
    """recall@10 of the production query (LIMIT 40, then the 10 nearest) against an exact
    scan, per ef_search; and how much farther HNSW's 10th hit is than the exact 10th (near-ties
    make id recall look worse than the answers are)."""
    from knowledge import retrieval

    exact_sql = """
        SELECT id, embedding <=> %(vec)s::vector FROM knowledge_chunk
        WHERE collection_id = ANY(%(collections)s)
        ORDER BY embedding <=> %(vec)s::vector LIMIT 10"""
    exact, exact_times = {}, []
    raw.execute("SET enable_indexscan = off")
    raw.execute("SET enable_bitmapscan = off")
    for q in questions:
        vec = retrieval._vector_literal(query_vectors[q])
        t = time.perf_counter()
        exact[q] = raw.execute(exact_sql, {"vec": vec, "collections": allowed}).fetchall()
        exact_times.append(time.perf_counter() - t)
    raw.execute("RESET enable_indexscan")
    raw.execute("RESET enable_bitmapscan")
    out = {"exact_scan": common.summary_ms(exact_times)}
    for ef in EF_CHECKED:
        raw.execute(f"SET hnsw.ef_search = {max(ef, POOL)}")
        found, times, ratios = 0, [], []
        for q in questions:
            vec = retrieval._vector_literal(query_vectors[q])
            t = time.perf_counter()
            rows = raw.execute(
                retrieval._VECTOR_SQL, {"vec": vec, "collections": allowed, "limit": POOL}
            ).fetchall()[:10]
            times.append(time.perf_counter() - t)
            found += len({r[0] for r in rows} & {r[0] for r in exact[q]})
            if rows and exact[q] and exact[q][-1][1] > 0:
                ratios.append(rows[-1][1] / exact[q][-1][1])
        out[f"ef_search_{ef}"] = {
            "recall_at_10": round(found / (10 * len(questions)), 4),
            "tenth_distance_ratio": round(sum(ratios) / max(len(ratios), 1), 4),
            **common.summary_ms(times),
        }
    raw.execute(f"SET hnsw.ef_search = {EF_USED}")
    return out


def measure_recall_real(main_url: str, query_vectors, questions) -> dict | None:
    """The same check on the ingest benchmark's collection: real MiniLM vectors only."""
    import psycopg
    from pgvector.psycopg import register_vector

    try:
        conn = psycopg.connect(psycopg_url(main_url), autocommit=True)
    except psycopg.Error:
        return None
    with conn:
        register_vector(conn)
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM knowledge_collection WHERE name LIKE 'bench-ingest%'"
            ).fetchall()
        ]
        if not ids:
            return None
        count = conn.execute(
            "SELECT count(*) FROM knowledge_chunk WHERE collection_id = ANY(%s)", [ids]
        ).fetchone()[0]
        conn.execute("SET hnsw.iterative_scan = relaxed_order")
        result = measure_recall(conn, query_vectors, questions, ids)
    return {"chunks": count, **result}


def print_report(stats, ratios, pipeline, recall, recall_real, n_questions, args, build) -> None:
    s = stats
    print(
        f"\n{n_questions} questions x {args.repeats} passes; k={POOL} candidates, ef_search {EF_USED}\n"
    )
    print(
        common.markdown_table(
            ["ratio", "p50", "p99"],
            [
                [
                    "(a) search_chunks_for_user(vector) ÷ raw pgvector SQL",
                    ratios["a_search_vector_over_raw_sql_p50"],
                    ratios["a_search_vector_over_raw_sql_p99"],
                ],
                [
                    "(c) hybrid ÷ vector (query vector precomputed)",
                    ratios["c_hybrid_over_vector_p50"],
                    ratios["c_hybrid_over_vector_p99"],
                ],
                [
                    "(c) hybrid ÷ vector (with the model embedding the query)",
                    ratios["c_hybrid_over_vector_with_model_p50"],
                    "-",
                ],
                [
                    "(d) lexical ÷ vector (query vector precomputed)",
                    ratios["d_lexical_over_vector_p50"],
                    "-",
                ],
                [
                    "(e) question → LLM request ÷ hybrid search alone",
                    ratios["e_pipeline_to_llm_over_search_p50"],
                    "-",
                ],
            ],
        )
    )
    print()
    rows = [
        [
            name,
            v["p50_ms"],
            v["p99_ms"],
            v["n"],
            v.get("mean_rows", ""),
            v.get("lexical_timed_out", ""),
        ]
        for name, v in s.items()
    ]
    p = pipeline
    rows += [
        [
            "(e) question_create + answer_stream → LLM request",
            p["question_to_llm_request"]["p50_ms"],
            p["question_to_llm_request"]["p99_ms"],
            p["question_to_llm_request"]["n"],
            "",
            "",
        ],
        [
            "(e) hybrid search alone (same questions)",
            p["hybrid_search_alone"]["p50_ms"],
            p["hybrid_search_alone"]["p99_ms"],
            p["hybrid_search_alone"]["n"],
            "",
            "",
        ],
        [
            "(e) pipeline overhead excluding search",
            p["overhead_excluding_search"]["p50_ms"],
            p["overhead_excluding_search"]["p99_ms"],
            p["overhead_excluding_search"]["n"],
            "",
            "",
        ],
    ]
    print(
        common.markdown_table(
            ["latency (ms)", "p50", "p99", "n", "rows", "lexical timed out"], rows
        )
    )
    print()
    keys = ["acl_ms", "embed_ms", "vector_ms", "lexical_ms", "rest_ms", "total_ms"]
    print(
        common.markdown_table(
            ["search_chunks_for_user timings_ms (p50 of each)", *keys],
            [
                [name, *[s[name]["parts_p50_ms"].get(key, "-") for key in keys]]
                for name in ("search_vector", "search_hybrid", "search_lexical")
            ],
        )
    )
    print()
    for label, rec in (
        (f"synthetic {args.chunks:,}, filtered to the reader's collections", recall),
        (
            f"real: the ingest collection ({(recall_real or {}).get('chunks', 0):,} chunks)",
            recall_real,
        ),
    ):
        if not rec:
            continue
        rows = [
            [
                f"ef_search {ef}" + (" (used)" if ef == EF_USED else ""),
                rec[f"ef_search_{ef}"]["recall_at_10"],
                rec[f"ef_search_{ef}"]["tenth_distance_ratio"],
                rec[f"ef_search_{ef}"]["p50_ms"],
                rec[f"ef_search_{ef}"]["p99_ms"],
            ]
            for ef in EF_CHECKED
        ]
        rows.append(
            [
                "exact (sequential scan)",
                1.0,
                1.0,
                rec["exact_scan"]["p50_ms"],
                rec["exact_scan"]["p99_ms"],
            ]
        )
        print()
        print(
            common.markdown_table(
                [
                    f"HNSW vs exact, {label}",
                    "recall@10",
                    "10th distance ÷ exact",
                    "p50 ms",
                    "p99 ms",
                ],
                rows,
            )
        )


if __name__ == "__main__":
    sys.exit(main())
