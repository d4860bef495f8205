"""The Insights page's queries on a year of data: 100k messages (50k questions, 50k answers).

    make bench-insights   (or: .venv/bin/python -m assistant.embedded services -- python bench/insights.py [--pairs 50000] [--repeats 7])

Builds a dedicated database (``assistant_bench_insights``, dropped at the end) with
``tests.support.insights.bulk_year`` (20 people, 5,000 conversations, questions spread over 365
days; every 50th answer found nothing, every 70th has an unsupported citation), then times,
interleaved round by round so load changes hit all alike:

- baseline: ``SELECT count(*) FROM assistant_message`` (a plain scan of the table);
- each selector of ``assistant.insights.selectors`` for a 365-day window;
- the whole page (``insights_for``) at 30 and 365 days, the embedder warm.

Prints p50 in ms and each one's ratio to the baseline's p50, and the page's query count.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

DB_NAME = "assistant_bench_insights"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=50_000, help="questions (= answers)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", type=Path, help="default: $VAR_DIR/results/insights.json")
    return p.parse_args(argv)


def _admin_connect():
    import psycopg

    url = common.database_url("postgres").replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(url, autocommit=True)


def build(pairs: int):
    from django.contrib.auth.models import Permission

    from accounts.models import User
    from tests.support.insights import bulk_year

    people = [User.objects.create_user(email=f"bench{i}@example.com") for i in range(20)]
    staff = User.objects.create_user(email="bench-staff@example.com", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="read_user_conversations"))
    started = time.perf_counter()
    bulk_year(owners=[p.pk for p in people], pairs=pairs, conversations=max(pairs // 10, 1))
    return staff, time.perf_counter() - started


def measure(staff, repeats: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from assistant.insights import selectors as s

    def baseline():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM assistant_message")
            cursor.fetchone()

    cases = {
        "baseline: count(*) over messages": baseline,
        "daily (365 days)": lambda: s.daily(365),
        "weekly": lambda: s.weekly(365),
        "origins": lambda: s.origins(365),
        "collections cited": lambda: s.collections_cited(365),
        "tokens per person": lambda: s.people(365),
        "totals": lambda: s.totals(365),
        "sources most cited": lambda: s.sources_most_cited(365),
        "sources uncited (90 days)": s.sources_uncited,
        "gaps (365 days, warm embedder)": lambda: s.gaps(365),
        "whole page, 30 days": lambda: s.insights_for(user=staff, days=30),
        "whole page, 365 days": lambda: s.insights_for(user=staff, days=365),
    }
    s.insights_for(user=staff, days=365)  # warm: the embedder, the caches
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            started = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - started)
    with CaptureQueriesContext(connection) as captured:
        s.insights_for(user=staff, days=365)
    base = common.summary_ms(samples["baseline: count(*) over messages"])["p50_ms"]
    rows = {}
    for name, values in samples.items():
        summary = common.summary_ms(values)
        rows[name] = {**summary, "ratio": common.ratio(summary["p50_ms"], base)}
    return {"cases": rows, "page_queries": len(captured)}


def main(argv=None) -> int:
    args = parse_args(argv)
    common.require_services()
    machine = common.machine_info()
    with _admin_connect() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    try:
        common.setup_django(database_url=common.database_url(DB_NAME))
        print(common.machine_line(machine))
        print(common.pg_version(), flush=True)
        staff, build_s = build(args.pairs)
        print(f"built {2 * args.pairs:,} messages in {build_s:.1f} s", flush=True)
        results = measure(staff, args.repeats)
    finally:
        from django.db import connections

        connections.close_all()
        with _admin_connect() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    table = [[name, r["p50_ms"], r["p99_ms"], r["ratio"]] for name, r in results["cases"].items()]
    print(common.markdown_table(["query", "p50 ms", "p99 ms", "× baseline p50"], table))
    print(f"page queries (365 days): {results['page_queries']}")
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = args.json or common.results_dir() / "insights.json"
    common.write_json(
        out,
        {"machine": machine, "messages": 2 * args.pairs, "build_s": round(build_s, 2), **results},
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
