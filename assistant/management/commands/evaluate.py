"""python manage.py evaluate --qa FILE.jsonl [--mode vector|lexical|hybrid|all] [--k 5]"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from knowledge.retrieval import MODES, search_chunks_for_user

CUTOFFS = (1, 5, 10)


def load_questions(path: Path) -> list[dict]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            assert isinstance(item["question"], str) and item["question"].strip()
            assert isinstance(item["expected_sources"], list) and item["expected_sources"]
        except (ValueError, KeyError, AssertionError, TypeError):
            raise CommandError(f"{path}:{number}: expected {{\"question\": ..., \"expected_sources\": [...]}}") from None
        questions.append(item)
    if not questions:
        raise CommandError(f"{path} holds no questions.")
    return questions


def hit_names(hit) -> set[str]:
    names = {hit.document_title, hit.source_name, PurePosixPath(hit.source_name).name}
    if hit.source_url:
        names.add(hit.source_url)
    return {n for n in names if n}


def first_relevant_rank(hits, expected: set[str]) -> int | None:
    for rank, hit in enumerate(hits, 1):
        if hit_names(hit) & expected:
            return rank
    return None


def score(ranks: list[int | None]) -> dict:
    total = len(ranks)
    result = {f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / total for k in CUTOFFS}
    result["mrr"] = sum(1 / r for r in ranks if r is not None) / total
    return {key: round(value, 4) for key, value in result.items()}


class Command(BaseCommand):
    help = "Measure retrieval: recall@1/5/10 and MRR for each mode over a question file."

    def add_arguments(self, parser):
        parser.add_argument("--qa", required=True, type=Path)
        parser.add_argument("--mode", choices=[*MODES, "all"], default="all")
        parser.add_argument("--k", type=int, default=5, help="passages the answer would use (shown for reference)")
        parser.add_argument("--user", help="evaluate as this account (default: a superuser)")
        parser.add_argument("--json", type=Path, help="also write the results here")

    def handle(self, *args, **opts):
        if not opts["qa"].exists():
            raise CommandError(f"{opts['qa']} does not exist.")
        questions = load_questions(opts["qa"])
        user = self._user(opts["user"])
        modes = list(MODES) if opts["mode"] == "all" else [opts["mode"]]
        depth = max(max(CUTOFFS), opts["k"])
        results = {}
        for mode in modes:
            ranks = []
            for item in questions:
                hits = search_chunks_for_user(user=user, query=item["question"], k=depth, mode=mode, neighbours=False).hits
                ranks.append(first_relevant_rank(hits, {str(s) for s in item["expected_sources"]}))
            results[mode] = score(ranks)
        self._print(results, len(questions))
        if opts["json"]:
            opts["json"].write_text(json.dumps(results, indent=2) + "\n")

    def _user(self, email):
        users = get_user_model().objects
        if email:
            user = users.filter(email__iexact=email, is_active=True).first()
            if user is None:
                raise CommandError(f"No active user with email {email}.")
            return user
        user = users.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            raise CommandError("No superuser exists; pass --user EMAIL.")
        return user

    def _print(self, results, count):
        keys = [f"recall@{k}" for k in CUTOFFS] + ["mrr"]
        self.stdout.write(f"{count} questions\n")
        self.stdout.write(f"{'mode':<10}" + "".join(f"{k:>11}" for k in keys))
        for mode, row in results.items():
            self.stdout.write(f"{mode:<10}" + "".join(f"{row[k]:>11.3f}" for k in keys))
