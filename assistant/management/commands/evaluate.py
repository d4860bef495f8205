"""python manage.py evaluate --qa FILE.jsonl [--mode vector|lexical|hybrid|all] [--k 5]
python manage.py evaluate --answers --qa FILE.jsonl [--user EMAIL] [--json OUT]

Without ``--answers`` it measures retrieval. With it, each question goes through the chat's
own pipeline (``answer_stream`` as ``--user``: same retrieval, permissions, prompt and
citation check) in a fresh conversation, kept out of that person's memory, and the answers
are scored; the figures are defined in ``score_answers`` and bench/eval/README.md.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from assistant import services
from assistant.answering import grounding, prompts
from assistant.answering.pipeline import answer_stream
from assistant.models import Conversation
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
            raise CommandError(
                f'{path}:{number}: expected {{"question": ..., "expected_sources": [...]}}'
            ) from None
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
    result = {
        f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / total for k in CUTOFFS
    }
    result["mrr"] = sum(1 / r for r in ranks if r is not None) / total
    return {key: round(value, 4) for key, value in result.items()}


# --- answers ---------------------------------------------------------------------------------

MAX_QUESTIONS = 5000
MAX_QUESTION_CHARS = 4000

# An answer saying the knowledge does not hold the answer: the pipeline's own nothing-found
# text, or one of these (case-insensitive). Tested in tests/commands/test_evaluate_answers.py.
REFUSAL_PATTERNS = (
    r"\b(?:does|do|did)\s*(?:not|n't)\s+(?:cover|mention|say|describe|contain|include|provide|specify)\b",
    r"\bnot\s+(?:covered|mentioned|described|found|stated|specified|included)\s+(?:in|by)\s+the\b",
    r"\bnot\s+in\s+the\s+(?:provided\s+|given\s+|available\s+|company\s+)?"
    r"(?:sources?|passages?|knowledge|documents?|documentation|context|information|texts?)\b",
    r"\bi\s+(?:do\s*not|don't|dont)\s+know\b",
    r"\bno\s+(?:information|mention|details?|data)\b",
    r"\b(?:couldn't|could\s+not|cannot|can't|can\s+not|unable\s+to|not\s+able\s+to)\s+find\b",
    r"\b(?:do\s*not|don't)\s+have\s+(?:any\s+|enough\s+)?(?:information|details|data)\b",
    r"\bthere\s+is\s+no\s+(?:information|mention)\b",
)
_REFUSAL_RE = re.compile("|".join(f"(?:{p})" for p in REFUSAL_PATTERNS), re.IGNORECASE)


def is_refusal(text: str) -> bool:
    """Whether ``text`` says the knowledge does not hold the answer (see REFUSAL_PATTERNS)."""
    text = " ".join(text.replace("’", "'").split())
    return prompts.nothing_found_text() in text or bool(_REFUSAL_RE.search(text))


def load_answer_questions(path: Path) -> list[dict]:
    """The question file, checked line by line; a bad line raises CommandError naming it."""
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise CommandError(f"{where}: not valid JSON ({exc.msg}).") from None
        questions.append(_checked(item, where))
        if len(questions) > MAX_QUESTIONS:
            raise CommandError(f"{path}: more than {MAX_QUESTIONS} questions.")
    if not questions:
        raise CommandError(f"{path} holds no questions.")
    return questions


def _checked(item, where: str) -> dict:
    if not isinstance(item, dict):
        raise CommandError(f"{where}: expected a JSON object.")
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise CommandError(f'{where}: "question" must be a non-empty string.')
    if len(question) > MAX_QUESTION_CHARS:
        raise CommandError(f'{where}: "question" is longer than {MAX_QUESTION_CHARS} characters.')
    unanswerable = item.get("unanswerable", False)
    if not isinstance(unanswerable, bool):
        raise CommandError(f'{where}: "unanswerable" must be true or false.')
    expected = item.get("expected_sources", [])
    if not isinstance(expected, list) or not all(isinstance(s, str) and s for s in expected):
        raise CommandError(f'{where}: "expected_sources" must be a list of source names.')
    contains = item.get("answer_contains")
    if contains is not None and (
        not isinstance(contains, list)
        or not contains
        or not all(isinstance(s, str) and s.strip() for s in contains)
    ):
        raise CommandError(f'{where}: "answer_contains" must be a non-empty list of strings.')
    if unanswerable and (expected or contains):
        raise CommandError(
            f'{where}: an unanswerable question has no "expected_sources" or "answer_contains".'
        )
    if not unanswerable and not expected:
        raise CommandError(f'{where}: "expected_sources" is needed (or "unanswerable": true).')
    return {
        "question": question,
        "expected_sources": expected,
        "answer_contains": contains,
        "unanswerable": unanswerable,
    }


def source_names(source: dict) -> set[str]:
    """The names a passage answers to: its document title, file name (with and without
    folders) and URL, as retrieval's ``evaluate`` matches them."""
    name = source.get("source_name") or ""
    names = {source.get("title") or "", name, PurePosixPath(name).name, source.get("url") or ""}
    return {n for n in names if n}


@dataclass
class AnswerRun:
    """What one question's answer was, as the chat's events told it."""

    text: str = ""
    status: str = ""
    error: str = ""
    sources: list[dict] = field(default_factory=list)
    cited: list[dict] = field(default_factory=list)
    unsupported: list[dict] = field(default_factory=list)
    ttft_ms: float | None = None
    total_ms: float | None = None


async def _run(user, question) -> AnswerRun:
    run = AnswerRun()
    started = time.perf_counter()
    # Measures the model's answers: a cached one, or passages quoted while it was down, would
    # measure nothing.
    stream = answer_stream(user=user, question=question, use_cache=False, allow_extractive=False)
    async for event in stream:
        if event.type == "retrieval":
            run.sources = event.sources
        elif event.type == "delta":
            if run.ttft_ms is None:
                run.ttft_ms = (time.perf_counter() - started) * 1000
            run.text += event.text
        elif event.type == "citation":
            run.cited.append({**event.source, "n": event.number})
        elif event.type == "done":
            run.status = event.message["status"]
            run.text = event.message["content"]
            run.unsupported = event.message.get("unsupported") or []
        elif event.type == "error":
            run.status, run.error = "failed", event.message
    run.total_ms = (time.perf_counter() - started) * 1000
    return run


def ask(user, text: str) -> AnswerRun:
    """Asks ``text`` as ``user`` in a new conversation that teaches their memory nothing."""
    question = services.question_create(
        user=user, conversation=None, text=text, origin=Conversation.Origin.CLI
    )
    services.conversation_set_remember(
        user=user, conversation=question.conversation, remember=False
    )
    return asyncio.run(_run(user, question))


def question_result(item: dict, run: AnswerRun) -> dict:
    expected = set(item["expected_sources"])
    refused = is_refusal(run.text) if run.status == "complete" else False
    cited = [
        {
            "n": c["n"],
            "source_name": c.get("source_name") or "",
            "title": c.get("title") or "",
            "expected": bool(source_names(c) & expected),
        }
        for c in run.cited
    ]
    cites_expected = any(c["expected"] for c in cited)
    correct = None
    if not item["unanswerable"]:
        if run.status != "complete" or refused:
            correct = False
        elif item["answer_contains"]:
            lowered = run.text.lower()
            correct = any(alt.lower() in lowered for alt in item["answer_contains"])
        else:
            correct = cites_expected
    numbers = [s["n"] for s in run.sources]
    checked = min(len(grounding.cited_sentences(run.text, numbers)), grounding.MAX_CLAIMS)
    return {
        "question": item["question"],
        "unanswerable": item["unanswerable"],
        "expected_sources": item["expected_sources"],
        "answer_contains": item["answer_contains"],
        "answer": run.text,
        "status": run.status,
        "error": run.error,
        "sources_found": [sorted(source_names(s)) for s in run.sources],
        "cited_sources": cited,
        "cites_expected_source": cites_expected,
        "refused": refused,
        "correct": correct,
        "cited_sentences": checked,
        "unsupported": run.unsupported,
        "ttft_ms": None if run.ttft_ms is None else round(run.ttft_ms),
        "total_ms": None if run.total_ms is None else round(run.total_ms),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _p50(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values)) if values else None


def score_answers(results: list[dict]) -> dict:
    """The figures over per-question results (rates in 0..1; None when nothing to count).

    - ``correct``: answerable questions whose answer contains one of ``answer_contains``
      (a question without it: whose answer cites an expected source); a refusal or a failed
      answer is never correct.
    - ``refusal_accuracy``: over all questions, unanswerable ones refused plus answerable ones
      not refused.
    - ``citation_precision``: cited passages (each number once per answer) that come from an
      expected source; any passage cited for an unanswerable question counts against it.
    - ``citation_source_recall``: answerable questions citing at least one expected source.
    - ``unsupported_claims``: cited sentences the citation check marked unsupported.
    """
    answerable = [r for r in results if not r["unanswerable"]]
    cited = [c for r in results for c in r["cited_sources"]]
    right_refusals = sum(1 for r in results if r["refused"] == r["unanswerable"])
    return {
        "n": len(results),
        "correct": _rate(sum(1 for r in answerable if r["correct"]), len(answerable)),
        "refusal_accuracy": _rate(right_refusals, len(results)),
        "citation_precision": _rate(sum(1 for c in cited if c["expected"]), len(cited)),
        "citation_source_recall": _rate(
            sum(1 for r in answerable if r["cites_expected_source"]), len(answerable)
        ),
        "unsupported_claims": _rate(
            sum(len(r["unsupported"]) for r in results), sum(r["cited_sentences"] for r in results)
        ),
        "ttft_p50_ms": _p50(r["ttft_ms"] for r in results),
        "total_p50_ms": _p50(r["total_ms"] for r in results),
    }


def verdict_word(result: dict) -> str:
    if result["status"] != "complete":
        return "FAILED"
    if result["unanswerable"]:
        return "refused" if result["refused"] else "INVENTED"
    if result["refused"]:
        return "REFUSED"
    return "correct" if result["correct"] else "WRONG"


class Command(BaseCommand):
    help = (
        "Measure retrieval (recall@1/5/10 and MRR per mode) or, with --answers, the chat's "
        "answers (correctness, refusals, citations, unsupported claims, timings)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--qa", required=True, type=Path)
        parser.add_argument(
            "--answers",
            action="store_true",
            help="answer each question through the chat pipeline and score the answers",
        )
        parser.add_argument("--mode", choices=[*MODES, "all"], default="all")
        parser.add_argument(
            "--k", type=int, default=5, help="passages the answer would use (shown for reference)"
        )
        parser.add_argument("--user", help="evaluate as this account (default: a superuser)")
        parser.add_argument("--json", type=Path, help="also write the results here")

    def handle(self, *args, **opts):
        if not opts["qa"].is_file():
            raise CommandError(f"{opts['qa']} does not exist.")
        if opts["answers"]:
            self._answers(opts)
            return
        questions = load_questions(opts["qa"])
        user = self._user(opts["user"])
        modes = list(MODES) if opts["mode"] == "all" else [opts["mode"]]
        depth = max(max(CUTOFFS), opts["k"])
        results = {}
        for mode in modes:
            ranks = []
            for item in questions:
                hits = search_chunks_for_user(
                    user=user, query=item["question"], k=depth, mode=mode, neighbours=False
                ).hits
                ranks.append(first_relevant_rank(hits, {str(s) for s in item["expected_sources"]}))
            results[mode] = score(ranks)
        self._print(results, len(questions))
        if opts["json"]:
            opts["json"].write_text(json.dumps(results, indent=2) + "\n")

    def _answers(self, opts) -> None:
        questions = load_answer_questions(opts["qa"])
        user = self._user(opts["user"])
        self.stdout.write(f"{len(questions)} questions, answered as {user.email}")
        results = []
        for number, item in enumerate(questions, 1):
            result = question_result(item, ask(user, item["question"]))
            results.append(result)
            self.stdout.write(
                f"[{number}/{len(questions)}] {verdict_word(result):<9}"
                f" cited {len(result['cited_sources'])}"
                f" unsupported {len(result['unsupported'])}/{result['cited_sentences']}"
                f" ttft {_ms_text(result['ttft_ms'])} total {_ms_text(result['total_ms'])}"
                f"  {item['question'][:70]}"
            )
        figures = score_answers(results)
        self._print_answers(figures)
        if opts["json"]:
            payload = {"answers": figures, "questions": results}
            opts["json"].write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")

    def _print_answers(self, figures: dict) -> None:
        self.stdout.write("")
        for key, value in figures.items():
            if value is None:
                shown = "-"
            elif key == "n" or key.endswith("_ms"):
                shown = str(value)
            else:
                shown = f"{value:.3f}"
            self.stdout.write(f"{key:<24}{shown:>10}")

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


def _ms_text(value) -> str:
    return "-" if value is None else f"{value}ms"
