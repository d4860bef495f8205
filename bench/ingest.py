"""Ingestion benchmark: the Django docs through the real path, against the bare model.

    VAR_DIR=var/bench EMBEDDED_LLM=0 EMBEDDED_REDIS_PORT=6397 \
        .venv/bin/python -m assistant.embedded services -- python bench/ingest.py [--limit N] [--workers 1]

What runs, in order:

1. ``migrate``; the corpus's previous ``bench-ingest NAME`` collection (and its files) is deleted
   and a fresh one is created, so every source is parsed, chunked and embedded from scratch.
   Other corpora's collections stay. Each collection is readable only by the group
   ``bench-NAME`` and its one account ``bench-NAME@example.com`` (``--name``, default the corpus
   folder's name), so an evaluation sees one corpus alone::

       python bench/ingest.py --corpus var/corpus/python-docs --if-missing
       python manage.py evaluate --qa bench/eval/python_docs.jsonl --user bench-python-docs@example.com
2. Every page is parsed and chunked here exactly as ``source_index`` does it (same settings,
   same tokenizer), timing parse and chunk CPU on their own. A sample of whole pages spread
   over the corpus (``--baseline-chunks``, default 1500 chunks) is set aside for the baseline.
3. Baseline, first pass: the raw model (``get_embedder().embed_documents``) on the sample's
   chunk texts, ``EMBEDDING_BATCH_SIZE`` texts per call in page order, as
   ``_embed_with_progress`` calls it; the model is loaded before the clock starts (the
   worker's clock includes its load, so the ratio is slightly conservative).
4. The real path: a Celery worker (``celery -A assistant worker -Q default,ingest
   --concurrency N``) started by this script with the same environment, its process tree's
   RSS and CPU time (and the PostgreSQL server's CPU time) sampled every 0.2 s; every page
   added with ``knowledge.services.source_create_from_upload`` (one transaction per file, as
   the ``ingest`` command and the upload view do); the clock runs from the first upload until
   every source is ``ready`` or ``failed``. The worker is then stopped by its PID.
5. Baseline, second pass (the ratio uses both passes, so a change in other load during the
   run moves the baseline too). The sample's texts are then rebuilt from the stored chunks and
   compared with the ones embedded here, and a few stored vectors with fresh embeddings.
6. When the ratio is below 0.8 (or with ``--profile-docs N``), ``services.source_index`` runs
   inline on a sample of pages, with stage timers (wall and CPU) and then under cProfile.

The collection is left in place so ``manage.py evaluate`` can run on it (``make eval``).
Results: printed, and written to ``$VAR_DIR/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

COLLECTION_PREFIX = "bench-ingest"
GOAL = 0.8


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="only the first N pages (default: all 260)")
    parser.add_argument("--workers", type=int, default=1, help="worker --concurrency (default 1)")
    parser.add_argument("--corpus", type=Path, default=common.CORPUS_DIR)
    parser.add_argument(
        "--name",
        help="the corpus's name: its collection is 'bench-ingest NAME', readable only by the "
        "group 'bench-NAME' and its account bench-NAME@example.com, so `manage.py evaluate "
        "--user bench-NAME@example.com` sees that corpus alone (default: the corpus folder's "
        "name, e.g. django-docs)",
    )
    parser.add_argument(
        "--baseline-chunks",
        type=int,
        default=1500,
        help="embed the chunks of whole pages, spread over the corpus, until at least this many "
        "(0: all), once before and once after the pipeline run (default 1500)",
    )
    parser.add_argument(
        "--sort-experiment",
        action="store_true",
        help="also time the raw model on the sample with texts sorted by length per page",
    )
    parser.add_argument(
        "--profile-docs",
        type=int,
        default=None,
        help="profile source_index inline on N documents (default: 12 when the ratio is below "
        f"{GOAL}, else none)",
    )
    parser.add_argument(
        "--no-pipeline",
        action="store_true",
        help="skip the pipeline run and the ratio; only --profile-docs N (on the collection a "
        "previous run left) and/or --sort-experiment",
    )
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when a previous run's collection holds every page, all ready (what "
        "`make eval` uses: the evaluation needs the corpus once, not a fresh measurement)",
    )
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--json", type=Path, help="default: $VAR_DIR/results/ingest.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    common.require_services()
    machine = common.machine_info()
    common.setup_django()
    from django.conf import settings

    from knowledge.embeddings import get_embedder

    corpus = common.ensure_corpus() if args.corpus == common.CORPUS_DIR else args.corpus
    files = sorted(corpus.glob("*.html"))[: args.limit]
    if not files:
        raise SystemExit(f"no *.html under {corpus}")
    user = common.bench_superuser()
    name = collection_name(args.name or corpus.name)
    batch = settings.EMBEDDING_BATCH_SIZE
    embedder = get_embedder()
    if args.no_pipeline:
        return without_pipeline(args, files, embedder, batch)
    if args.if_missing and already_ingested(files, name):
        reader = restrict_to_reader(name)
        print(f"{len(files)} pages already ingested in {name!r} (read by {reader}): nothing to do")
        return 0
    collection = fresh_collection(user, name)
    print(f"collection {name!r}, read by {restrict_to_reader(name)}")
    print(common.machine_line(machine))
    print(
        f"{common.pg_version()}; {len(files)} pages, {sum(f.stat().st_size for f in files) / 2**20:.1f} MB; "
        f"worker --concurrency {args.workers}; EMBEDDING_BATCH_SIZE {batch}",
        flush=True,
    )

    # The chunk texts, built here exactly as the worker builds them (checked against the
    # database afterwards); parsing and chunking are timed on their own, without a profiler.
    prepared, prep = prepare_chunks(files, embedder)
    sample = pick_documents(prepared, args.baseline_chunks)
    texts = [prepared[name] for name in sample]
    print(
        f"parse + chunk here: {prep['parse_cpu_s']:.1f} + {prep['chunk_cpu_s']:.1f} CPU-s for "
        f"{prep['chunks']} chunks; baseline sample: {sum(map(len, texts))} chunks from "
        f"{len(sample)} pages",
        flush=True,
    )
    before = embed_sample(embedder, texts, batch)
    print(f"raw model before: {before['chunks_per_s']:.1f} chunks/s", flush=True)

    e2e = run_pipeline(args, user, collection, files)
    print(
        f"pipeline: {e2e['documents']} documents, {e2e['chunks']} chunks in {e2e['wall_s']:.1f} s "
        f"({e2e['failures']} failed)",
        flush=True,
    )

    after = embed_sample(embedder, texts, batch)
    print(f"raw model after: {after['chunks_per_s']:.1f} chunks/s", flush=True)
    check = check_same_texts(collection, prepared, sample, embedder)
    n = before["chunks"]
    raw_rate = 2 * n / (before["wall_s"] + after["wall_s"])
    raw_cpu_per_chunk = (before["cpu_s"] + after["cpu_s"]) / (2 * n)
    e2e_rate = e2e["chunks"] / e2e["wall_s"]
    worker_cpu_per_chunk = e2e["worker_cpu_s"] / e2e["chunks"]
    db_cpu_per_chunk = (e2e["db_server_cpu_s"] or 0) / e2e["chunks"]
    results = {
        "machine": machine,
        "postgres": common.pg_version(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "embedding_batch_size": batch,
        "pipeline": e2e,
        "baseline_before": before,
        "baseline_after": after,
        "same_texts": check,
        "parse_and_chunk_here": prep,
        "padding": padding_waste(embedder, list(prepared.values()), texts, batch),
        "chunks_per_s_pipeline": round(e2e_rate, 2),
        "chunks_per_s_raw_model": round(raw_rate, 2),
        "ratio_pipeline_to_raw": round(e2e_rate / raw_rate, 3),
        "cpu_ratio_raw_to_worker": round(raw_cpu_per_chunk / worker_cpu_per_chunk, 3),
        "cpu_ratio_raw_to_worker_and_db": round(
            raw_cpu_per_chunk / (worker_cpu_per_chunk + db_cpu_per_chunk), 3
        ),
        "cpu_ms_per_chunk": {
            "raw_model": round(1000 * raw_cpu_per_chunk, 1),
            "worker": round(1000 * worker_cpu_per_chunk, 1),
            "postgres_server": round(1000 * db_cpu_per_chunk, 1),
            "parse_here": round(1000 * prep["parse_cpu_s"] / prep["chunks"], 1),
            "chunk_here": round(1000 * prep["chunk_cpu_s"] / prep["chunks"], 1),
        },
        "documents_per_s": round(e2e["documents"] / e2e["wall_s"], 3),
    }
    print_summary(results)

    wall_ratio = results["ratio_pipeline_to_raw"]
    profile_docs = (
        args.profile_docs if args.profile_docs is not None else (12 if wall_ratio < GOAL else 0)
    )
    if profile_docs:
        results["profile"] = profile_inline(collection, profile_docs, prepared, batch)
    if args.sort_experiment:
        results["sort_experiment"] = sort_experiment(embedder, texts)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = args.json or common.results_dir() / "ingest.json"
    common.write_json(out, results)
    print(f"\nwritten to {out}; collection {collection.name!r} kept for `manage.py evaluate`")
    return 0


def without_pipeline(args, files, embedder, batch) -> int:
    from knowledge.models import Collection

    prepared, _ = prepare_chunks(files, embedder)
    results = {}
    if args.profile_docs:
        name = collection_name(args.name or args.corpus.name)
        collection = Collection.objects.filter(name=name).first()
        if collection is None:
            raise SystemExit("no bench-ingest collection yet: run bench/ingest.py once first")
        results["profile"] = profile_inline(collection, args.profile_docs, prepared, batch)
    if args.sort_experiment:
        sample = pick_documents(prepared, args.baseline_chunks)
        results["sort_experiment"] = sort_experiment(embedder, [prepared[n] for n in sample])
    common.write_json(common.results_dir() / "ingest-extra.json", results)
    return 0


def collection_name(corpus_name: str) -> str:
    return f"{COLLECTION_PREFIX} {corpus_name}"


def reader_email(collection: str) -> str:
    return f"bench-{collection.removeprefix(COLLECTION_PREFIX).strip()}@example.com"


def already_ingested(files, name: str) -> bool:
    from knowledge.models import Source

    names = {f.name for f in files}
    ready = set(
        Source.objects.filter(collection__name=name, status="ready").values_list("name", flat=True)
    )
    return names <= ready


def restrict_to_reader(name: str) -> str:
    """Make the collection readable only by its own group, with one account in it; returns the
    account's email. Several corpora share the database, and an evaluation must see one alone
    (a superuser reads them all)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from knowledge.models import Collection

    email = reader_email(name)
    group, _ = Group.objects.get_or_create(name=email.split("@")[0])
    users = get_user_model().objects
    reader = users.filter(email=email).first() or users.create_user(email=email, password=None)
    reader.groups.add(group)
    collection = Collection.objects.get(name=name)
    if collection.visibility != "groups":
        collection.visibility = "groups"
        collection.save(update_fields=["visibility"])
    collection.read_groups.set([group])
    return email


def fresh_collection(user, name: str):
    from knowledge.models import Collection, Source

    for old in Collection.objects.filter(name=name):
        files = [s.file.name for s in Source.objects.filter(collection=old) if s.file]
        old.delete()
        for file_name in files:
            Source._meta.get_field("file").storage.delete(file_name)
    return Collection.objects.create(name=name, visibility="groups", created_by=user)


# --- the real path ---------------------------------------------------------------------------


def postmaster_pid() -> int | None:
    from django.db import connection

    host = connection.settings_dict.get("HOST") or ""
    pidfile = Path(host) / "postmaster.pid" if host.startswith("/") else None
    try:
        return int(pidfile.read_text().split()[0]) if pidfile else None
    except (OSError, ValueError, IndexError):
        return None


def run_pipeline(args, user, collection, files) -> dict:
    from django.db import transaction
    from django.db.models import Sum

    from knowledge import services
    from knowledge.models import Source

    log = common.results_dir() / "ingest-worker.log"
    worker = common.Worker(concurrency=args.workers, log_path=log)
    try:
        ready_s = worker.wait_ready()
        sampler = common.RssSampler(worker.pid).start()
        pg_pid = postmaster_pid()
        db_sampler = common.RssSampler(pg_pid).start() if pg_pid else None
        time.sleep(0.5)  # a first sample of the idle tree, so CPU deltas start from it
        cpu_before, db_cpu_before = sampler.cpu_total, db_sampler.cpu_total if db_sampler else 0.0
        started = time.perf_counter()
        ids = []
        for path in files:
            with transaction.atomic():
                result = services.source_create_from_upload(
                    user=user, collection=collection, filename=path.name, data=path.read_bytes()
                )
            ids.append(result.source.pk)
        uploaded_s = time.perf_counter() - started
        done_at: dict[int, float] = {}
        while len(done_at) < len(ids):
            if time.perf_counter() - started > args.timeout:
                break
            if worker.proc.poll() is not None:
                raise RuntimeError(f"worker died:\n{worker.log_tail()}")
            now = time.perf_counter() - started
            for pk in Source.objects.filter(pk__in=ids, status__in=("ready", "failed")).values_list(
                "pk", flat=True
            ):
                done_at.setdefault(pk, now)
            time.sleep(0.2)
        wall = max(done_at.values()) if done_at else time.perf_counter() - started
        time.sleep(0.3)  # one more sample after the last task
        sampler.stop()
        if db_sampler:
            db_sampler.stop()
    finally:
        worker.stop()
    sources = Source.objects.filter(pk__in=ids)
    failed = list(sources.filter(status="failed").values_list("name", "error"))
    chunks = sources.filter(status="ready").aggregate(n=Sum("chunk_count"))["n"] or 0
    return {
        "documents": len(ids),
        "ready": sources.filter(status="ready").count(),
        "failures": len(failed) + (len(ids) - len(done_at)),
        "failed": failed[:20],
        "chunks": chunks,
        "wall_s": round(wall, 2),
        "upload_s": round(uploaded_s, 2),
        "worker_ready_s": round(ready_s, 2),
        "worker_peak_rss_mib": round(sampler.peak_total / 2**20, 1),
        "worker_peak_rss_single_mib": round(sampler.peak_single / 2**20, 1),
        "worker_cpu_s": round(sampler.cpu_total - cpu_before, 2),
        "db_server_cpu_s": round(db_sampler.cpu_total - db_cpu_before, 2) if db_sampler else None,
        "rss_samples": sampler.samples,
    }


# --- the bare model ---------------------------------------------------------------------------


def prepare_chunks(files, embedder) -> tuple[dict[str, list[str]], dict]:
    """Each page's chunk ``embed_text``s, as ``source_index`` makes them (same settings)."""
    from django.conf import settings

    from knowledge import parsing
    from knowledge.chunking import chunk_document

    prepared: dict[str, list[str]] = {}
    parse_cpu = chunk_cpu = 0.0
    for path in files:
        data = path.read_bytes()
        with common.CpuClock() as c1:
            doc = parsing.parse_document(data, filename=path.name)
        with common.CpuClock() as c2:
            drafts = chunk_document(
                doc,
                target_tokens=settings.CHUNK_TARGET_TOKENS,
                overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
                count_tokens=embedder.count_tokens,
            )
        parse_cpu += c1.cpu
        chunk_cpu += c2.cpu
        if drafts:
            prepared[path.name] = [d.embed_text for d in drafts]
    chunks = sum(len(v) for v in prepared.values())
    return prepared, {
        "pages": len(files),
        "chunks": chunks,
        "parse_cpu_s": round(parse_cpu, 2),
        "chunk_cpu_s": round(chunk_cpu, 2),
    }


def pick_documents(per_doc: dict, target: int) -> list:
    """Whole documents spread evenly over the corpus until ``target`` chunks (0: all)."""
    ids = sorted(per_doc)
    total = sum(len(v) for v in per_doc.values())
    if not target or target >= total:
        return ids
    stride = max(1, total // target)
    chosen, have = [], 0
    for offset in range(stride):  # every stride-th page, then the next offset if still short
        for key in ids[offset::stride]:
            chosen.append(key)
            have += len(per_doc[key])
            if have >= target:
                return sorted(chosen)
    return sorted(chosen)


def embed_sample(embedder, documents: list[list[str]], batch: int) -> dict:
    """The model alone, called as ``_embed_with_progress`` calls it: ``batch`` texts at a time."""
    embedder.embed_documents(documents[0][:batch])  # the model is loaded outside the clock
    with common.CpuClock() as clock:
        for texts in documents:
            for start in range(0, len(texts), batch):
                embedder.embed_documents(texts[start : start + batch])
    n = sum(len(d) for d in documents)
    return {
        "chunks": n,
        "wall_s": round(clock.wall, 2),
        "cpu_s": round(clock.cpu, 2),
        "chunks_per_s": round(n / clock.wall, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
    }


def check_same_texts(collection, prepared, sample, embedder) -> dict:
    """The sample's texts, rebuilt from the stored chunks, equal the ones embedded here; and a
    few stored vectors equal a fresh embedding of their text."""
    import numpy as np

    from knowledge.chunking import _embed_text
    from knowledge.models import Chunk

    stored: dict[str, list[tuple[str, int]]] = defaultdict(list)
    rows = (
        Chunk.objects.filter(collection=collection, source__name__in=sample)
        .order_by("source_id", "ordinal")
        .values_list("source__name", "document__title", "heading_path", "text", "id")
    )
    for name, title, path, text, chunk_id in rows.iterator(chunk_size=2000):
        stored[name].append((_embed_text(title, tuple(path or ()), text), chunk_id))
    differing = [name for name in sample if [t for t, _ in stored[name]] != prepared[name]]
    probe = stored[sample[len(sample) // 2]][:8]
    vectors = dict(
        Chunk.objects.filter(pk__in=[c for _, c in probe]).values_list("pk", "embedding")
    )
    again = embedder.embed_documents([t for t, _ in probe])
    cosines = [
        float(np.dot(np.asarray(vectors[c]), np.asarray(v)))
        for (_, c), v in zip(probe, again, strict=True)
    ]
    print(
        f"same texts: {len(sample) - len(differing)}/{len(sample)} pages identical; stored vs "
        f"re-embedded cosine min {min(cosines):.5f}",
        flush=True,
    )
    return {
        "pages_identical": len(sample) - len(differing),
        "pages": len(sample),
        "differing": differing[:10],
        "stored_vs_reembedded_min_cosine": round(min(cosines), 6),
    }


def sort_experiment(embedder, documents: list[list[str]]) -> dict:
    """The same texts: as now (batches of 32 in page order) vs sorted by length first (what
    sorting in ``_embed_with_progress`` would give), batches of 32 and 16. The variants take
    turns page by page, so a change in other load hits them alike."""
    variants = {
        "as now, batch 32": (False, 32),
        "sorted by length, batch 32": (True, 32),
        "sorted by length, batch 16": (True, 16),
    }
    names = list(variants)
    wall = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    embedder.embed_documents(documents[0][:8])
    for i, texts in enumerate(documents):
        for name in names[i % 3 :] + names[: i % 3]:
            ordered, size = variants[name]
            batch_texts = sorted(texts, key=len) if ordered else texts
            with common.CpuClock() as clock:
                for start in range(0, len(batch_texts), size):
                    embedder.embed_documents(batch_texts[start : start + size])
            wall[name] += clock.wall
            cpu[name] += clock.cpu
    n = sum(len(d) for d in documents)
    out = {
        name: {
            "chunks": n,
            "wall_s": round(wall[name], 2),
            "cpu_s": round(cpu[name], 2),
            "chunks_per_s": round(n / wall[name], 2),
        }
        for name in names
    }
    base_wall, base_cpu = wall[names[0]], cpu[names[0]]
    print(
        "\n"
        + common.markdown_table(
            [
                "same texts, raw model (interleaved per page)",
                "chunks/s",
                "CPU s",
                "speed-up (wall)",
                "CPU saved",
            ],
            [
                [
                    name,
                    v["chunks_per_s"],
                    v["cpu_s"],
                    round(base_wall / wall[name], 3),
                    f"{100 * (1 - cpu[name] / base_cpu):.0f}%",
                ]
                for name, v in out.items()
            ],
        )
    )
    return out


def padding_waste(embedder, corpus: list[list[str]], sample: list[list[str]], batch: int) -> dict:
    """Tokens the model computes (each batch padded to its longest text) per real token.

    The pipeline calls ``embed_documents`` once per ``batch`` texts, so the model's own sort by
    length only reorders inside each call; sorting a page's texts first would pad much less.
    Also the padded tokens per chunk of the baseline sample and of the whole corpus: the model's
    time is about linear in them, so equal values mean the sample is representative.
    """
    cap = getattr(embedder, "max_tokens", 254)

    def padded(documents, size, ordered):
        real = total = chunks = 0
        for texts in documents:
            sizes = [min(embedder.count_tokens(t), cap) + 2 for t in texts]
            if ordered:
                sizes.sort()
            real, chunks = real + sum(sizes), chunks + len(sizes)
            for start in range(0, len(sizes), size):
                part = sizes[start : start + size]
                total += max(part) * len(part)
        return real, total, chunks

    real, now, chunks = padded(corpus, batch, False)
    _, by_length, _ = padded(corpus, batch, True)
    _, by_length_16, _ = padded(corpus, 16, True)
    _, sample_now, sample_chunks = padded(sample, batch, False)
    return {
        "padded_per_real_token_as_now": round(now / real, 3),
        "padded_per_real_token_sorted_per_page": round(by_length / real, 3),
        "padded_per_real_token_sorted_per_page_batch_16": round(by_length_16 / real, 3),
        "padded_tokens_per_chunk_corpus": round(now / chunks, 1),
        "padded_tokens_per_chunk_sample": round(sample_now / sample_chunks, 1),
    }


def print_summary(r: dict) -> None:
    e, p, c = r["pipeline"], r["padding"], r["cpu_ms_per_chunk"]
    b1, b2 = r["baseline_before"], r["baseline_after"]
    print()
    print(
        common.markdown_table(
            ["figure", "value"],
            [
                [
                    "**pipeline chunks/s ÷ raw model chunks/s** (goal ≥ 0.8)",
                    f"**{r['ratio_pipeline_to_raw']:.3f}**",
                ],
                [
                    "model CPU/chunk ÷ worker CPU/chunk (÷ worker + PostgreSQL)",
                    f"{r['cpu_ratio_raw_to_worker']:.3f} ({r['cpu_ratio_raw_to_worker_and_db']:.3f})",
                ],
                ["documents/s (pipeline)", f"{r['documents_per_s']:.2f}"],
                ["chunks/s (pipeline)", f"{r['chunks_per_s_pipeline']:.1f}"],
                [
                    f"chunks/s (raw model, same texts, batch {r['embedding_batch_size']}; before / after)",
                    f"{r['chunks_per_s_raw_model']:.1f} ({b1['chunks_per_s']:.1f} / {b2['chunks_per_s']:.1f})",
                ],
                [
                    "documents / chunks / failures",
                    f"{e['documents']} / {e['chunks']} / {e['failures']}",
                ],
                [
                    "wall time (first upload → last source done)",
                    f"{e['wall_s']:.1f} s (uploads took {e['upload_s']:.1f} s)",
                ],
                [
                    "worker peak RSS (process tree / largest process)",
                    f"{e['worker_peak_rss_mib']:.0f} MiB / {e['worker_peak_rss_single_mib']:.0f} MiB",
                ],
                [
                    "CPU ms per chunk: worker / PostgreSQL / raw model",
                    f"{c['worker']} / {c['postgres_server']} / {c['raw_model']}",
                ],
                [
                    "CPU ms per chunk, measured here: parse / chunk",
                    f"{c['parse_here']} / {c['chunk_here']}",
                ],
                [
                    "padded ÷ real tokens: as now / sorted per page (batch 32 / 16)",
                    f"{p['padded_per_real_token_as_now']} / {p['padded_per_real_token_sorted_per_page']} / {p['padded_per_real_token_sorted_per_page_batch_16']}",
                ],
            ],
        )
    )


# --- where the time goes ----------------------------------------------------------------------


class StageTimer:
    """Wraps functions by name and adds up their wall and CPU time (nested stages apart)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list = []

    def wrap(self, owner, attr: str, label: str) -> None:
        original = getattr(owner, attr)

        def timed(*a, **kw):
            t, c = time.perf_counter(), common.process_cpu_seconds()
            try:
                return original(*a, **kw)
            finally:
                self.seconds[label] += time.perf_counter() - t
                self.cpu[label] += common.process_cpu_seconds() - c
                self.calls[label] += 1

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)


def _index_again(sources, profiler=None) -> tuple[float, float, int]:
    from knowledge import services
    from knowledge.models import Source

    wall = cpu = 0.0
    chunks = 0
    for source in sources:
        Source.objects.filter(pk=source.pk).update(indexed_hash="")  # force a full re-index
        t, c = time.perf_counter(), common.process_cpu_seconds()
        if profiler:
            profiler.enable()
        services.source_index(source_id=source.pk)
        if profiler:
            profiler.disable()
        wall += time.perf_counter() - t
        cpu += common.process_cpu_seconds() - c
        chunks += Source.objects.get(pk=source.pk).chunk_count
    return wall, cpu, chunks


def profile_inline(collection, count: int, prepared: dict, batch: int) -> dict:
    """source_index in this process on ``count`` pages: first with stage timers only (true
    shares), then under cProfile (which inflates pure-Python code such as BeautifulSoup
    several times more than the ONNX call, so read its list for *what*, not *how much*)."""
    from knowledge import parsing, services
    from knowledge.embeddings import get_embedder
    from knowledge.models import Source

    embedder = get_embedder()
    sources = list(Source.objects.filter(collection=collection, status="ready").order_by("pk"))
    step = max(1, len(sources) // count)
    sample = sources[::step][:count]
    timer = StageTimer()
    timer.wrap(parsing, "parse_document", "parse (parse_document)")
    timer.wrap(services, "chunk_document", "chunk (chunk_document, incl. its count_tokens)")
    timer.wrap(embedder, "count_tokens", "  of which count_tokens")
    timer.wrap(embedder, "embed_documents", "embed (embed_documents)")
    timer.wrap(services, "_write_chunks", "DB write (_write_chunks, incl. final state save)")
    timer.wrap(services, "_set_state", "state saves + events (_set_state)")
    timer.wrap(services, "_notify", "  of which events (_notify)")
    timer.wrap(services, "_read_content", "read file")
    try:
        wall, cpu, chunks = _index_again(sample)
    finally:
        timer.restore()
    named = sum(v for k, v in timer.seconds.items() if not k.startswith("  "))
    timer.seconds["other (lock, queries, hashing, Python)"] = wall - named
    timer.cpu["other (lock, queries, hashing, Python)"] = cpu - sum(
        v for k, v in timer.cpu.items() if not k.startswith("  ")
    )
    raw = embed_sample(embedder, [prepared[s.name] for s in sample if s.name in prepared], batch)
    rows = [
        [
            label,
            f"{seconds:.2f}",
            f"{100 * seconds / wall:.1f}%",
            f"{timer.cpu[label]:.2f}",
            timer.calls.get(label, ""),
        ]
        for label, seconds in sorted(timer.seconds.items(), key=lambda kv: -kv[1])
    ]
    inline_ratio = (chunks / wall) / raw["chunks_per_s"]
    print(
        f"\nsource_index inline (no Celery, no profiler) on {len(sample)} pages, {chunks} chunks: "
        f"{wall:.1f} s wall, {cpu:.1f} s CPU; raw model on the same texts {raw['wall_s']:.1f} s "
        f"-> inline ratio {inline_ratio:.3f}"
    )
    print(common.markdown_table(["stage", "wall s", "share", "CPU s", "calls"], rows))
    profiler = cProfile.Profile()
    _index_again(sample, profiler)
    out = common.results_dir() / "ingest-profile.prof"
    profiler.dump_stats(str(out))
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(25)
    text = stream.getvalue()
    print(
        "\ncProfile of the same run, top functions by own time:\n" + text[text.find("ncalls") - 3 :]
    )
    print(f"(full profile: {out}; view with `python -m pstats {out}`)")
    return {
        "documents": len(sample),
        "chunks": chunks,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "raw_model_same_texts": raw,
        "inline_ratio": round(inline_ratio, 3),
        "stages_wall_s": {k: round(v, 3) for k, v in timer.seconds.items()},
        "stages_cpu_s": {k: round(v, 3) for k, v in timer.cpu.items()},
        "calls": dict(timer.calls),
        "profile_file": str(out),
    }


if __name__ == "__main__":
    sys.exit(main())
