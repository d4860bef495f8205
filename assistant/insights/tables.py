"""Every table of the Insights page as rows for CSV (``/insights/<name>.csv``).

A cell that a spreadsheet would read as a formula (starting with = + - @, or a tab or carriage
return that some spreadsheets strip first) is prefixed with ``'``: questions, comments and
source names are typed by people and must never run as formulas in an admin's spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from assistant.insights import selectors

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value  # numbers are data, never formulas (a negative number stays a number)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_text(header: list[str], rows: Iterable[Iterable]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: Callable[[int], list[list]]  # days -> rows
    texts: bool = False  # holds people's words: needs the conversation-reading permission


def _pick(rows: list[dict], keys: list[str]) -> list[list]:
    return [[row.get(k) for k in keys] for row in rows]


def _keyed(fetch: Callable[[int], list[dict]], keys: list[str]) -> Table:
    return Table(header=keys, rows=lambda days: _pick(fetch(days), keys))


def _downvote_rows(days: int) -> list[list]:
    rows = []
    for fb in selectors.downvotes(days):
        answer = fb.message
        question = answer.reply_to.content if answer.reply_to else ""
        cited = "; ".join(f"[{c.number}] {c.source_name}" for c in answer.citations.all())
        rows.append(
            [fb.created_at.isoformat(), question, answer.content, fb.comment, cited,
             str(answer.conversation_id)]
        )  # fmt: skip
    return rows


def _gap_rows(days: int) -> list[list]:
    return [
        [
            g.representative,
            g.count,
            g.reasons["nothing_found"],
            g.reasons["unsupported"],
            g.reasons["not_helpful"],
            ", ".join(g.collections),
            " | ".join(e["question"] for e in g.examples),
        ]
        for g in selectors.gaps(days).groups
    ]


_DAILY_KEYS = [
    "day", "questions", "people", "answers", "first_token_p50", "first_token_p95",
    "total_p50", "total_p95", "tokens_in", "tokens_out", "helpful", "not_helpful",
]  # fmt: skip

TABLES: dict[str, Table] = {
    "daily": _keyed(selectors.daily, _DAILY_KEYS),
    "weekly": _keyed(
        selectors.weekly, ["week", "questions", "people", "helpful", "not_helpful", "helpful_rate"]
    ),
    "origins": _keyed(selectors.origins, ["origin", "questions", "people"]),
    "collections": _keyed(selectors.collections_cited, ["collection", "citations", "answers"]),
    "people": _keyed(selectors.people, ["email", "answers", "tokens_in", "tokens_out"]),
    "sources-cited": _keyed(
        selectors.sources_most_cited, ["source_id", "source", "collection", "citations", "answers"]
    ),
    "sources-uncited": _keyed(
        lambda days: selectors.sources_uncited(), ["source_id", "source", "collection", "added"]
    ),
    "sources-failing": _keyed(
        lambda days: selectors.sources_failing(),
        ["source_id", "source", "collection", "error", "updated_at"],
    ),
    "sources-stale": _keyed(
        lambda days: selectors.sources_stale(), ["source_id", "source", "collection", "changed"]
    ),
    "downvotes": Table(
        header=["rated_at", "question", "answer", "comment", "cited", "conversation_id"],
        rows=_downvote_rows,
        texts=True,
    ),
    "gaps": Table(
        header=[
            "question",
            "count",
            "nothing_found",
            "unsupported",
            "not_helpful",
            "collections",
            "examples",
        ],
        rows=_gap_rows,
        texts=True,
    ),  # fmt: skip
}
