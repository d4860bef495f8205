"""Builders for the Insights page's tests and benchmark: answered questions with the marks the
page reads (nothing found, unsupported citations, feedback, timings, tokens), one at a time or
by the hundred thousand in SQL."""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from assistant import services
from assistant.answering import prompts
from assistant.models import Citation, Feedback, Message
from knowledge.models import Source


def ask(
    user,
    question: str,
    *,
    answer: str = "The answer [1].",
    origin: str = "web",
    nothing_found: bool = False,
    unsupported: bool = False,
    rating: int | None = None,
    comment: str = "",
    cite: Source | None = None,
    quote: str = "A passage.",
    first_token_ms: int = 400,
    total_ms: int = 2000,
    prompt_tokens: int = 500,
    completion_tokens: int = 80,
    at: datetime | None = None,
) -> Message:
    """One question and its complete answer, as the pipeline would have stored them."""
    asked = services.question_create(user=user, conversation=None, text=question, origin=origin)
    sources = []
    if cite is not None:
        sources = [
            {
                "n": 1,
                "chunk_id": None,
                "source_id": cite.pk,
                "collection_id": cite.collection_id,
                "source_name": cite.name,
                "text": quote,
            }
        ]
    reply = Message.objects.create(
        conversation=asked.conversation,
        role=Message.Role.ASSISTANT,
        reply_to=asked,
        status=Message.Status.COMPLETE,
        content=prompts.nothing_found_text() if nothing_found else answer,
        sources=[] if nothing_found else sources,
        unsupported=[{"sentence": answer, "numbers": [1], "reason": "no support"}]
        if unsupported
        else [],
        first_token_ms=first_token_ms,
        total_ms=total_ms,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )
    if cite is not None and not nothing_found:
        Citation.objects.create(
            message=reply,
            collection_id=cite.collection_id,
            source_id=cite.pk,
            number=1,
            quote=quote,
            source_name=cite.name,
        )
    if rating is not None:
        Feedback.objects.create(message=reply, user=user, rating=rating, comment=comment)
    if at is not None:
        Message.objects.filter(pk__in=[asked.pk, reply.pk]).update(created_at=at)
        Feedback.objects.filter(message=reply).update(created_at=at)
        reply.refresh_from_db()
    return reply


_BULK = """
INSERT INTO assistant_conversation
    (id, owner_id, title, origin, slack_team, slack_channel, slack_thread_ts, remember, summary,
     created_at, updated_at)
SELECT md5('c' || i)::uuid, (%(owners)s::bigint[])[1 + i %% cardinality(%(owners)s::bigint[])], 'Question ' || i,
       (ARRAY['web', 'web', 'web', 'slack', 'api'])[1 + i %% 5], '', '', '', true, '',
       now() - (i %% 365) * interval '1 day', now() - (i %% 365) * interval '1 day'
FROM generate_series(1, %(conversations)s) AS i;

INSERT INTO assistant_message
    (id, conversation_id, role, content, status, error, superseded, sources, memory_used,
     unsupported, from_cache, model, created_at, updated_at)
SELECT md5('q' || i)::uuid, md5('c' || (1 + i %% %(conversations)s))::uuid, 'user',
       (ARRAY['How many vacation days do I get?', 'What is the travel meal allowance?',
              'How do I reset my VPN token?', 'Where is the parental leave policy?'])[1 + i %% 4],
       'complete', '', false, '[]', '[]', '[]', false, '',
       now() - (i %% 365) * interval '1 day' - (i %% 1000) * interval '1 second',
       now() - (i %% 365) * interval '1 day'
FROM generate_series(1, %(pairs)s) AS i;

INSERT INTO assistant_message
    (id, conversation_id, role, content, status, error, superseded, sources, memory_used,
     unsupported, from_cache, model, reply_to_id, first_token_ms, total_ms, prompt_tokens,
     completion_tokens, created_at, updated_at)
SELECT md5('a' || i)::uuid, md5('c' || (1 + i %% %(conversations)s))::uuid, 'assistant',
       CASE WHEN i %% 50 = 0 THEN %(nothing)s ELSE 'An answer [1].' END,
       'complete', '', false,
       CASE WHEN i %% 50 = 0 THEN '[]'::jsonb ELSE '[{"n": 1, "collection_id": 0}]'::jsonb END,
       '[]',
       CASE WHEN i %% 70 = 0 THEN '[{"sentence": "x"}]'::jsonb ELSE '[]'::jsonb END,
       false, 'bench', md5('q' || i)::uuid, 200 + i %% 300, 1500 + i %% 2000, 400 + i %% 200,
       60 + i %% 40,
       now() - (i %% 365) * interval '1 day' - (i %% 1000) * interval '1 second' + interval '2 seconds',
       now() - (i %% 365) * interval '1 day'
FROM generate_series(1, %(pairs)s) AS i;
"""


def bulk_year(*, owners: list[int], pairs: int = 50_000, conversations: int = 5_000) -> None:
    """``pairs`` questions and answers (2 x pairs messages) spread over the last 365 days, in
    SQL (a few seconds for 100k messages): every 50th answer found nothing, every 70th has an
    unsupported citation; four distinct questions, so grouping them embeds four texts."""
    params = {
        "owners": owners,
        "pairs": pairs,
        "conversations": conversations,
        "nothing": prompts.nothing_found_text(),
    }
    with connection.cursor() as cursor:
        # One statement per call: parameters are bound by the server, which takes one at a time.
        for statement in filter(str.strip, _BULK.split(";\n")):
            cursor.execute(statement, params)
        cursor.execute("ANALYZE assistant_message")
        cursor.execute("ANALYZE assistant_conversation")
