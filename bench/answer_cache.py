"""Repeated questions and the answer cache: hit ratio and time to first token on a replay.

    VAR_DIR=var/bench EMBEDDED_REDIS_PORT=6397 .venv/bin/python -m assistant.embedded \
        services -- python bench/answer_cache.py [--asks 40] [--distinct 10] [--seed 7]

Needs the Django corpus ingested (``make bench-ingest`` or ``bench/ingest.py --if-missing``)
and the local model (the launcher serves ``EMBEDDED_LLM_MODEL``). Four people ask: three in
the corpus's reader group (one scope) and one who also reads a second collection (another
scope, so never served the first three's answers). The replay draws ``--asks`` questions from
``--distinct`` questions of ``bench/eval/django_answers.jsonl`` with a Zipf-like skew (a few
questions asked often, as in a company), each as the first question of a new conversation,
through the chat's own pipeline (``answer_stream``).

The baseline, measured in the same run, is the same replay with the cache off (every ask goes
to the model, ``use_cache=False``); its first ``--baseline`` asks are timed. Reports the hit
ratio, time to first token of hits and of misses (p50) and the ratio to the baseline. Writes
``$VAR_DIR/results/answer_cache.json``. Nothing fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    machine_info,
    machine_line,
    markdown_table,
    percentile,
    ratio,
    require_services,
    results_dir,
    setup_django,
    write_json,
)

ANSWERS = Path(__file__).resolve().parent / "eval" / "django_answers.jsonl"
READER_GROUP = "bench-django-docs"


def people():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from knowledge.models import Collection

    group = Group.objects.filter(name=READER_GROUP).first()
    if group is None:
        raise SystemExit("Ingest the Django corpus first: bench/ingest.py --if-missing")
    extra, _ = Collection.objects.get_or_create(
        name="bench-cache other scope", defaults={"visibility": Collection.Visibility.GROUPS}
    )
    other, _ = Group.objects.get_or_create(name="bench-cache-other")
    extra.read_groups.add(other)
    users = []
    for n, groups in enumerate(([group], [group], [group], [group, other]), 1):
        user, _ = get_user_model().objects.get_or_create(email=f"bench-cache-{n}@example.com")
        user.groups.set(groups)
        users.append(user)
    return users


def replay(questions: list[str], users, asks: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(questions))]  # Zipf, s = 1
    return [(rng.choices(questions, weights)[0], rng.choice(users)) for _ in range(asks)]


async def _ask(user, question, use_cache: bool) -> dict:
    from assistant.answering.pipeline import answer_stream

    started = time.perf_counter()
    result = {"ttft_s": None, "from_cache": False, "status": ""}
    async for event in answer_stream(user=user, question=question, use_cache=use_cache):
        if event.type == "delta" and result["ttft_s"] is None:
            result["ttft_s"] = time.perf_counter() - started
        elif event.type == "done":
            result["from_cache"] = bool(event.message.get("from_cache"))
            result["status"] = event.message["status"]
        elif event.type == "error":
            result["status"] = "failed"
    result["total_s"] = time.perf_counter() - started
    return result


def ask(user, text: str, use_cache: bool) -> dict:
    from assistant import services
    from assistant.models import Conversation

    question = services.question_create(
        user=user, conversation=None, text=text, origin=Conversation.Origin.CLI
    )
    services.conversation_set_remember(
        user=user, conversation=question.conversation, remember=False
    )
    return asyncio.run(_ask(user, question, use_cache))


def p50(values) -> float:
    values = [v for v in values if v is not None]
    return percentile(values, 50) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asks", type=int, default=40)
    parser.add_argument("--distinct", type=int, default=10)
    parser.add_argument("--baseline", type=int, default=6, help="asks timed with the cache off")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    require_services()
    setup_django()
    from assistant.models import AnswerCacheEntry

    info = machine_info()
    print(machine_line(info))
    lines = [json.loads(line) for line in ANSWERS.read_text().splitlines() if line.strip()]
    questions = [q["question"] for q in lines if not q.get("unanswerable")][: args.distinct]
    users = people()
    plan = replay(questions, users, args.asks, args.seed)
    AnswerCacheEntry.objects.all().delete()

    baseline = []
    for n, (text, user) in enumerate(plan[: args.baseline], 1):
        baseline.append(ask(user, text, use_cache=False))
        print(f"baseline {n}/{args.baseline}: {baseline[-1]['ttft_s']:.1f} s to first token")
    runs = []
    for n, (text, user) in enumerate(plan, 1):
        run = ask(user, text, use_cache=True)
        runs.append({**run, "question": text, "user": user.email})
        print(
            f"replay {n}/{len(plan)}: {'hit ' if run['from_cache'] else 'miss'} "
            f"{(run['ttft_s'] or 0):.2f} s to first token"
        )
    hits = [r for r in runs if r["from_cache"]]
    misses = [r for r in runs if not r["from_cache"]]
    # What a perfect cache could do: every ask after the first of its (question, scope).
    scope_of = {u.email: ("other" if n == 3 else "readers") for n, u in enumerate(users)}
    seen, repeats = set(), 0
    for text, user in plan:
        key = (text.lower(), scope_of[user.email])
        repeats += key in seen
        seen.add(key)
    base_ttft = p50(r["ttft_s"] for r in baseline)
    result = {
        "machine": info,
        "asks": len(runs),
        "distinct_questions": len(questions),
        "hits": len(hits),
        "hit_ratio": round(len(hits) / len(runs), 3),
        "possible_hit_ratio": round(repeats / len(runs), 3),
        "ttft_p50_s": {
            "baseline_cache_off": round(base_ttft, 3),
            "hits": round(p50(r["ttft_s"] for r in hits), 3),
            "misses": round(p50(r["ttft_s"] for r in misses), 3),
            "all_with_cache": round(p50(r["ttft_s"] for r in runs), 3),
        },
        "ratio_to_baseline": {
            "hits": ratio(p50(r["ttft_s"] for r in hits), base_ttft),
            "all_with_cache": ratio(p50(r["ttft_s"] for r in runs), base_ttft),
        },
        "runs": runs,
    }
    write_json(results_dir() / "answer_cache.json", result)
    print(
        markdown_table(
            ["", "asks", "TTFT p50 (s)", "÷ baseline"],
            [
                [
                    "baseline (cache off)",
                    len(baseline),
                    result["ttft_p50_s"]["baseline_cache_off"],
                    1.0,
                ],
                [
                    "replay: hits",
                    len(hits),
                    result["ttft_p50_s"]["hits"],
                    result["ratio_to_baseline"]["hits"],
                ],
                [
                    "replay: misses",
                    len(misses),
                    result["ttft_p50_s"]["misses"],
                    ratio(p50(r["ttft_s"] for r in misses), base_ttft),
                ],
                [
                    "replay: all",
                    len(runs),
                    result["ttft_p50_s"]["all_with_cache"],
                    result["ratio_to_baseline"]["all_with_cache"],
                ],
            ],
        )
    )
    print(f"hit ratio {result['hit_ratio']} (a perfect cache: {result['possible_hit_ratio']})")


if __name__ == "__main__":
    main()
