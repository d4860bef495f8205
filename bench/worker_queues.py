"""Two workers: both on both queues, or one per queue? (`run --workers 2` chooses from this.)

    VAR_DIR=var/bench EMBEDDED_LLM=0 EMBEDDED_REDIS_PORT=6397 \\
        .venv/bin/python -m assistant.embedded services -- python bench/worker_queues.py

For each layout, two real workers (WORKER_CONCURRENCY 2 each) get a burst of uploads to index
(queue `ingest`) and, while those run, a quick task on `default` every second (what a Slack
answer or a memory extraction waits for before it starts: `assistant.echo`, which only writes
the cache). Reported: how long each quick task waited (sent -> done) and how long the whole
burst took to index. Layouts: `both` = each worker `-Q default,ingest`; `split` = one worker
`-Q ingest`, one `-Q default`.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    Worker,
    bench_superuser,
    machine_info,
    machine_line,
    percentile,
    require_services,
    results_dir,
    setup_django,
    write_json,
)

LAYOUTS = {
    "both": ("default,ingest", "default,ingest"),
    "split": ("ingest", "default"),
}


def document(i: int, paragraphs: int) -> bytes:
    # Distinct text per upload (identical bytes would be skipped as unchanged).
    body = "\n\n".join(
        f"## Part {p}\n\nUpload {i}, paragraph {p}: the travel desk books trains and flights "
        f"for trip {i * 1000 + p}, two weeks ahead, within the budget set by each team."
        for p in range(paragraphs)
    )
    return f"# Policy {i} {uuid.uuid4().hex}\n\n{body}\n".encode()


def run_layout(name: str, queues: tuple[str, str], *, uploads: int, paragraphs: int, quick: int):
    from django.core.cache import cache

    from assistant.project.celery import app
    from knowledge import services
    from knowledge.models import Collection, Source

    logs = results_dir() / "worker-queues"
    workers = [
        Worker(concurrency=2, queues=q, log_path=logs / f"{name}-w{i}.log", name=f"{name}-w{i}")
        for i, q in enumerate(queues, start=1)
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        user = bench_superuser()
        collection = Collection.objects.create(name=f"Worker queues {name} {uuid.uuid4().hex[:6]}")
        started = time.monotonic()
        ids = [
            services.source_create_from_upload(
                user=user,
                collection=collection,
                filename=f"policy-{i}.md",
                data=document(i, paragraphs),
            ).source.pk
            for i in range(uploads)
        ]
        time.sleep(2)  # the workers are indexing now
        waits = []
        for _ in range(quick):
            key = uuid.uuid4().hex
            sent = time.monotonic()
            app.send_task("assistant.echo", args=[key, "x"], queue="default")
            while cache.get(f"echo:{key}") is None:
                time.sleep(0.02)
            waits.append(time.monotonic() - sent)
            time.sleep(max(0.0, 1 - (time.monotonic() - sent)))
        while (
            Source.objects.filter(pk__in=ids)
            .exclude(status__in=[Source.Status.READY, Source.Status.FAILED])
            .exists()
        ):
            time.sleep(0.2)
        indexed = time.monotonic() - started
        failed = Source.objects.filter(pk__in=ids, status=Source.Status.FAILED).count()
    finally:
        for worker in workers:
            worker.stop()
    return {
        "layout": name,
        "queues": queues,
        "quick_task_wait_p50_ms": round(percentile(waits, 50) * 1000),
        "quick_task_wait_max_ms": round(max(waits) * 1000),
        "burst_indexed_s": round(indexed, 1),
        "failed": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--paragraphs", type=int, default=120)
    parser.add_argument("--quick-tasks", type=int, default=10)
    args = parser.parse_args()
    require_services()
    setup_django()
    info = machine_info()
    print(machine_line(info), flush=True)
    rows = []
    for name, queues in LAYOUTS.items():
        row = run_layout(
            name, queues, uploads=args.uploads, paragraphs=args.paragraphs, quick=args.quick_tasks
        )
        print(row, flush=True)
        rows.append(row)
    write_json(results_dir() / "worker_queues.json", {"machine": info, "layouts": rows})


if __name__ == "__main__":
    main()
