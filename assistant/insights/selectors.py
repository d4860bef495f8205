"""What the Insights page reads: every figure is one SQL statement over a window of days.

The per-day figures filter messages by role and time (index ``message_role_time``), so a year of
data costs the rows of the window, not the table. Knowledge gaps read at most
``INSIGHTS_GAP_QUESTIONS`` recent failed answers and group their questions by meaning in Python
(``grouping``). People's words (questions, answers, comments) are shown only to staff explicitly
granted ``assistant.read_user_conversations``, the admin's rule for reading a conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from assistant.answering import prompts
from assistant.insights import grouping
from assistant.insights.models import GapResolution
from assistant.models import Feedback
from assistant.selectors import explicitly_granted
from knowledge import embeddings
from knowledge.models import Collection, Source

DAY_CHOICES = (7, 30, 90, 365)
DEFAULT_DAYS = 30
UNCITED_DAYS = 90
STALE_DAYS = 365
TOP = 50  # rows in a ranked table (people, collections, sources)
DOWNVOTES_SHOWN = 50
RESOLUTIONS_SHOWN = 20


def may_read_conversations(user) -> bool:
    """Granted on purpose, as in the admin: being a superuser is not enough."""
    return user.is_staff and explicitly_granted(user, "read_user_conversations")


def window_days(raw: str | None) -> int:
    """The page's ``?days=``: one of DAY_CHOICES, anything else the default."""
    try:
        days = int(raw or DEFAULT_DAYS)
    except ValueError:
        return DEFAULT_DAYS
    return days if days in DAY_CHOICES else DEFAULT_DAYS


def window_start(days: int, now: datetime | None = None) -> datetime:
    """Midnight (UTC) of the window's first day: the window holds ``days`` whole days."""
    now = now or timezone.now()
    first = (now - timedelta(days=days - 1)).date()
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


def _rows(sql: str, params: dict) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# --- usage ------------------------------------------------------------------------------------

_DAILY = """
WITH q AS (
    SELECT (m.created_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS questions, count(DISTINCT c.owner_id) AS people
    FROM assistant_message m JOIN assistant_conversation c ON c.id = m.conversation_id
    WHERE m.role = 'user' AND m.created_at >= %(since)s
    GROUP BY 1
), a AS (
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS answers,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY first_token_ms) AS first_token_p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY first_token_ms) AS first_token_p95,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY total_ms) AS total_p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY total_ms) AS total_p95,
           coalesce(sum(prompt_tokens), 0) AS tokens_in,
           coalesce(sum(completion_tokens), 0) AS tokens_out
    FROM assistant_message
    WHERE role = 'assistant' AND status = 'complete' AND created_at >= %(since)s
    GROUP BY 1
), f AS (
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
           count(*) FILTER (WHERE rating = 1) AS helpful,
           count(*) FILTER (WHERE rating = -1) AS not_helpful
    FROM assistant_feedback WHERE created_at >= %(since)s
    GROUP BY 1
)
SELECT d::date AS day,
       coalesce(q.questions, 0) AS questions, coalesce(q.people, 0) AS people,
       coalesce(a.answers, 0) AS answers,
       round(a.first_token_p50)::int AS first_token_p50, round(a.first_token_p95)::int AS first_token_p95,
       round(a.total_p50)::int AS total_p50, round(a.total_p95)::int AS total_p95,
       coalesce(a.tokens_in, 0) AS tokens_in, coalesce(a.tokens_out, 0) AS tokens_out,
       coalesce(f.helpful, 0) AS helpful, coalesce(f.not_helpful, 0) AS not_helpful
FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS d
LEFT JOIN q ON q.day = d::date LEFT JOIN a ON a.day = d::date LEFT JOIN f ON f.day = d::date
ORDER BY d
"""

_WEEKLY = """
SELECT (date_trunc('week', m.created_at AT TIME ZONE 'UTC'))::date AS week,
       count(*) AS questions, count(DISTINCT c.owner_id) AS people
FROM assistant_message m JOIN assistant_conversation c ON c.id = m.conversation_id
WHERE m.role = 'user' AND m.created_at >= %(since)s
GROUP BY 1 ORDER BY 1
"""

_WEEKLY_FEEDBACK = """
SELECT (date_trunc('week', created_at AT TIME ZONE 'UTC'))::date AS week,
       count(*) FILTER (WHERE rating = 1) AS helpful,
       count(*) FILTER (WHERE rating = -1) AS not_helpful
FROM assistant_feedback WHERE created_at >= %(since)s
GROUP BY 1 ORDER BY 1
"""

_ORIGINS = """
SELECT c.origin, count(*) AS questions, count(DISTINCT c.owner_id) AS people
FROM assistant_message m JOIN assistant_conversation c ON c.id = m.conversation_id
WHERE m.role = 'user' AND m.created_at >= %(since)s
GROUP BY 1 ORDER BY 2 DESC
"""

_COLLECTIONS = """
SELECT ci.collection_id, coalesce(k.name, '(deleted)') AS collection,
       count(*) AS citations, count(DISTINCT ci.message_id) AS answers
FROM assistant_citation ci
JOIN assistant_message m ON m.id = ci.message_id
LEFT JOIN knowledge_collection k ON k.id = ci.collection_id
WHERE m.role = 'assistant' AND m.created_at >= %(since)s
GROUP BY 1, 2 ORDER BY 3 DESC, 2 LIMIT %(top)s
"""

_PEOPLE = """
SELECT u.email, count(*) AS answers,
       coalesce(sum(m.prompt_tokens), 0) AS tokens_in,
       coalesce(sum(m.completion_tokens), 0) AS tokens_out
FROM assistant_message m
JOIN assistant_conversation c ON c.id = m.conversation_id
JOIN accounts_user u ON u.id = c.owner_id
WHERE m.role = 'assistant' AND m.created_at >= %(since)s
GROUP BY u.id, u.email
ORDER BY coalesce(sum(m.prompt_tokens), 0) + coalesce(sum(m.completion_tokens), 0) DESC, u.email
LIMIT %(top)s
"""

_TOTALS = """
SELECT count(*) AS questions, count(DISTINCT c.owner_id) AS people
FROM assistant_message m JOIN assistant_conversation c ON c.id = m.conversation_id
WHERE m.role = 'user' AND m.created_at >= %(since)s
"""


def _params(days: int, now: datetime | None = None) -> dict:
    since = window_start(days, now)
    last = (now or timezone.now()).date()
    return {"since": since, "first": since.date(), "last": last, "top": TOP}


def daily(days: int) -> list[dict]:
    return _rows(_DAILY, _params(days))


def weekly(days: int) -> list[dict]:
    params = _params(days)
    feedback = {row["week"]: row for row in _rows(_WEEKLY_FEEDBACK, params)}
    rows = _rows(_WEEKLY, params)
    weeks = {row["week"] for row in rows} | set(feedback)
    by_week = {row["week"]: row for row in rows}
    result = []
    for week in sorted(weeks):
        votes = feedback.get(week, {})
        helpful, not_helpful = votes.get("helpful", 0), votes.get("not_helpful", 0)
        rated = helpful + not_helpful
        result.append(
            {
                "week": week,
                "questions": by_week.get(week, {}).get("questions", 0),
                "people": by_week.get(week, {}).get("people", 0),
                "helpful": helpful,
                "not_helpful": not_helpful,
                "helpful_rate": round(100 * helpful / rated) if rated else None,
            }
        )
    return result


def origins(days: int) -> list[dict]:
    return _rows(_ORIGINS, _params(days))


def collections_cited(days: int) -> list[dict]:
    return _rows(_COLLECTIONS, _params(days))


def people(days: int) -> list[dict]:
    return _rows(_PEOPLE, _params(days))


def totals(days: int) -> dict:
    return _rows(_TOTALS, _params(days))[0]


# --- feedback ---------------------------------------------------------------------------------


def downvotes(days: int) -> list[Feedback]:
    """The latest 👎 with the answer, its question, its conversation and cited passages."""
    return list(
        Feedback.objects.filter(rating=Feedback.Rating.DOWN, created_at__gte=window_start(days))
        .select_related("message__reply_to", "message__conversation")
        .prefetch_related("message__citations")
        .order_by("-created_at", "-id")[:DOWNVOTES_SHOWN]
    )


# --- knowledge gaps ---------------------------------------------------------------------------

# An answer fails a question when the pipeline found nothing relevant (its own text, no
# passages), when a cited sentence was not supported by its passage, or when the asker gave 👎.
_FAILED = """(
    (a.sources = '[]'::jsonb AND a.content = %(nothing)s)
    OR a.unsupported <> '[]'::jsonb
    OR EXISTS (SELECT 1 FROM assistant_feedback f WHERE f.message_id = a.id AND f.rating = -1)
)"""

# The f-strings below join constant SQL only: every value is a bound parameter.
_GAP_CANDIDATES = f"""
SELECT a.id AS answer_id, a.conversation_id, a.created_at, q.content AS question,
       (a.sources = '[]'::jsonb AND a.content = %(nothing)s) AS nothing_found,
       a.unsupported <> '[]'::jsonb AS unsupported,
       EXISTS (SELECT 1 FROM assistant_feedback f WHERE f.message_id = a.id AND f.rating = -1)
           AS not_helpful,
       ARRAY(SELECT DISTINCT (s->>'collection_id')::bigint
             FROM jsonb_array_elements(a.sources) s WHERE (s->>'collection_id') IS NOT NULL) AS collection_ids
FROM assistant_message a JOIN assistant_message q ON q.id = a.reply_to_id
WHERE a.role = 'assistant' AND a.status = 'complete' AND a.created_at >= %(since)s
  AND {_FAILED}
ORDER BY a.created_at DESC, a.id
LIMIT %(limit)s
"""  # noqa: S608

# The questions asked after the oldest resolution shown, each with whether its answer failed.
_LATER_QUESTIONS = f"""
SELECT a.id AS answer_id, a.created_at, q.content AS question, {_FAILED} AS failed
FROM assistant_message a JOIN assistant_message q ON q.id = a.reply_to_id
WHERE a.role = 'assistant' AND a.status = 'complete' AND a.created_at >= %(since)s
ORDER BY a.created_at DESC, a.id
LIMIT %(limit)s
"""  # noqa: S608


@dataclass
class GapGroup:
    representative: str
    answer_id: str  # the representative's answer: how a "resolve" names the group
    count: int
    examples: list[dict]
    reasons: dict[str, int]
    collections: list[str]
    centroid: list[float] = field(repr=False)
    last_asked: datetime | None = None


@dataclass
class ResolutionState:
    resolution: GapResolution
    later_answered: int
    later_failed: int


@dataclass
class Gaps:
    groups: list[GapGroup]
    resolutions: list[ResolutionState]
    questions_read: int


def _gap_limit() -> int:
    return settings.INSIGHTS_GAP_QUESTIONS


def _similarity() -> float:
    return settings.INSIGHTS_GAP_SIMILARITY


def _vectors(texts: list[str]) -> dict[str, list[float]]:
    """One vector per distinct text, through the per-process query cache: a question that
    this process searched (or grouped before) costs no model call, and the others are
    embedded in one batch."""
    distinct = list(dict.fromkeys(texts))
    return dict(zip(distinct, embeddings.embed_queries(distinct), strict=True))


def gaps(days: int) -> Gaps:
    since = window_start(days)
    nothing = prompts.nothing_found_text()
    rows = _rows(_GAP_CANDIDATES, {"since": since, "nothing": nothing, "limit": _gap_limit()})
    model = embeddings.get_embedder().name
    resolved = list(
        GapResolution.objects.filter(embedding_model=model)
        .select_related("source", "resolved_by", "answer__reply_to")
        .order_by("-resolved_at", "-id")[:RESOLUTIONS_SHOWN]
    )
    later: list[dict] = []
    if resolved:
        oldest = min(r.resolved_at for r in resolved)
        later = _rows(
            _LATER_QUESTIONS,
            {"since": oldest, "nothing": nothing, "limit": _gap_limit()},
        )
    vectors = _vectors([r["question"] for r in rows] + [r["question"] for r in later])
    threshold = _similarity()
    centroids = [list(map(float, r.centroid)) for r in resolved]
    # A question that failed before its group was resolved is handled: it leaves the open list.
    open_rows = [
        row
        for row in rows
        if not any(
            row["created_at"] <= r.resolved_at
            and grouping.cosine(vectors[row["question"]], centroid) >= threshold
            for r, centroid in zip(resolved, centroids, strict=True)
        )
    ]
    clusters = grouping.greedy_groups(
        [vectors[row["question"]] for row in open_rows], threshold=threshold
    )
    names = _collection_names({cid for row in rows for cid in row["collection_ids"] or []})
    groups = [_group(open_rows, cluster, names) for cluster in clusters]
    groups.sort(key=lambda g: (-g.count, g.representative))
    states = [
        _resolution_state(r, centroid, later, vectors, threshold)
        for r, centroid in zip(resolved, centroids, strict=True)
    ]
    return Gaps(groups=groups, resolutions=states, questions_read=len(rows))


def _group(rows: list[dict], cluster: grouping.Group, names: dict[int, str]) -> GapGroup:
    members = [rows[i] for i in cluster.members]
    reasons = {
        "nothing_found": sum(1 for m in members if m["nothing_found"]),
        "unsupported": sum(1 for m in members if m["unsupported"]),
        "not_helpful": sum(1 for m in members if m["not_helpful"]),
    }
    collection_ids = sorted({cid for m in members for cid in m["collection_ids"] or []})
    first = members[0]
    return GapGroup(
        representative=first["question"],
        answer_id=str(first["answer_id"]),
        count=len(members),
        examples=[
            {
                "question": m["question"],
                "conversation_id": m["conversation_id"],
                "answer_id": m["answer_id"],
                "created_at": m["created_at"],
            }
            for m in members[:5]
        ],
        reasons=reasons,
        collections=[names.get(cid, "(deleted)") for cid in collection_ids],
        centroid=cluster.centroid,
        last_asked=max(m["created_at"] for m in members),
    )


def _resolution_state(resolution, centroid, later, vectors, threshold) -> ResolutionState:
    near = [
        row
        for row in later
        if row["created_at"] > resolution.resolved_at
        and grouping.cosine(vectors[row["question"]], centroid) >= threshold
    ]
    failed = sum(1 for row in near if row["failed"])
    return ResolutionState(
        resolution=resolution, later_answered=len(near) - failed, later_failed=failed
    )


def _collection_names(ids: set[int]) -> dict[int, str]:
    return dict(Collection.objects.filter(id__in=ids).values_list("id", "name")) if ids else {}


def gap_group_for_answer(*, days: int, answer_id: str) -> GapGroup | None:
    """The open group whose representative answer is ``answer_id`` now (None once it changed:
    another admin resolved it, or newer questions reshaped the groups)."""
    return next((g for g in gaps(days).groups if g.answer_id == str(answer_id)), None)


def recent_sources(limit: int = 50) -> list[Source]:
    """What an admin probably just added to answer a group: the newest sources."""
    return list(Source.objects.select_related("collection").order_by("-created_at", "-id")[:limit])


# --- sources ----------------------------------------------------------------------------------

_MOST_CITED = """
SELECT ci.source_id, coalesce(s.name, max(ci.source_name)) AS source,
       coalesce(k.name, '(deleted)') AS collection,
       count(*) AS citations, count(DISTINCT ci.message_id) AS answers
FROM assistant_citation ci
JOIN assistant_message m ON m.id = ci.message_id
LEFT JOIN knowledge_source s ON s.id = ci.source_id
LEFT JOIN knowledge_collection k ON k.id = s.collection_id
WHERE m.role = 'assistant' AND m.created_at >= %(since)s AND ci.source_id IS NOT NULL
GROUP BY ci.source_id, s.name, k.name
ORDER BY 4 DESC, 2 LIMIT %(top)s
"""

_UNCITED = """
SELECT s.id AS source_id, s.name AS source, k.name AS collection, s.created_at AS added
FROM knowledge_source s JOIN knowledge_collection k ON k.id = s.collection_id
WHERE s.status = 'ready' AND s.created_at < %(since)s
  AND s.id NOT IN (
      SELECT ci.source_id FROM assistant_citation ci
      JOIN assistant_message m ON m.id = ci.message_id
      WHERE m.role = 'assistant' AND m.created_at >= %(since)s AND ci.source_id IS NOT NULL
  )
ORDER BY s.created_at, s.id LIMIT %(top)s
"""

_FAILING = """
SELECT s.id AS source_id, s.name AS source, k.name AS collection, s.error, s.updated_at
FROM knowledge_source s JOIN knowledge_collection k ON k.id = s.collection_id
WHERE s.status = 'failed'
ORDER BY s.updated_at DESC, s.id LIMIT %(top)s
"""

_STALE = """
SELECT s.id AS source_id, s.name AS source, k.name AS collection,
       coalesce(s.last_changed_at, s.indexed_at, s.created_at) AS changed
FROM knowledge_source s JOIN knowledge_collection k ON k.id = s.collection_id
WHERE s.status = 'ready' AND coalesce(s.last_changed_at, s.indexed_at, s.created_at) < %(before)s
ORDER BY 4, s.id LIMIT %(top)s
"""


def sources_most_cited(days: int) -> list[dict]:
    return _rows(_MOST_CITED, _params(days))


def sources_uncited() -> list[dict]:
    """Ready sources older than UNCITED_DAYS that no answer cited in that time."""
    return _rows(_UNCITED, {"since": timezone.now() - timedelta(days=UNCITED_DAYS), "top": TOP})


def sources_failing() -> list[dict]:
    return _rows(_FAILING, {"top": TOP})


def sources_stale() -> list[dict]:
    """Ready sources whose content last changed more than STALE_DAYS ago: a web page's last
    change found by a re-check (``Source.changed_at``), else when it was indexed. A page checked
    yesterday that has not changed in a year is stale; one re-indexed unchanged is not fresh."""
    return _rows(_STALE, {"before": timezone.now() - timedelta(days=STALE_DAYS), "top": TOP})


# --- the page ---------------------------------------------------------------------------------


@dataclass
class Insights:
    days: int
    since: date
    totals: dict
    daily: list[dict]
    weekly: list[dict]
    origins: list[dict]
    collections: list[dict]
    people: list[dict]
    most_cited: list[dict]
    uncited: list[dict]
    failing: list[dict]
    stale: list[dict]
    gaps: Gaps
    downvotes: list[Feedback] | None  # None: the viewer may not read people's words
    recent_sources: list[Source]


def insights_for(*, user, days: int) -> Insights:
    """Everything the page shows. Callers check that ``user`` is staff."""
    texts = may_read_conversations(user)
    return Insights(
        days=days,
        since=window_start(days).date(),
        totals=totals(days),
        daily=daily(days),
        weekly=weekly(days),
        origins=origins(days),
        collections=collections_cited(days),
        people=people(days),
        most_cited=sources_most_cited(days),
        uncited=sources_uncited(),
        failing=sources_failing(),
        stale=sources_stale(),
        gaps=gaps(days),
        downvotes=downvotes(days) if texts else None,
        recent_sources=recent_sources(),
    )
