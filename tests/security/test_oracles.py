"""Oracles: nothing a client receives measures what it may not read.

How long each stage of a search took (the access check, the embedding, the vector and the
lexical search), and whether the lexical search timed out, depends on the whole index,
restricted documents included: a client timing many questions could learn whether words occur
in documents it cannot read. Those timings go to operators (Prometheus metrics and one log
line per answer); clients get coarse totals only (retrieval, first token, total).

Real PostgreSQL (the lexical time-out is real: its table is locked from another connection),
local embeddings and a scripted OpenAI-compatible server.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from prometheus_client import REGISTRY

from assistant import llm, services
from assistant.answering.pipeline import answer_stream
from tests.support.knowledge import index_text, make_collection
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

HANDBOOK = """# Travel policy

## Booking flights
Employees book flights through the travel desk at least fourteen days before departure.
"""
QUESTION = "How do I book a flight through the travel desk?"
COARSE = {"retrieval_ms", "first_token_ms", "total_ms"}
ABOUT_THE_MODEL = {"model", "prompt_tokens", "completion_tokens"}  # the API's timings block
STAGE_WORDS = ("acl", "embed", "vector", "lexical", "search", "timed_out")


@pytest.fixture
def reader(make_user):
    admin = make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    staff = Group.objects.create(name="staff")
    index_text(make_collection("Handbook", readers=[staff]), "travel.md", HANDBOOK, user=admin)
    user = make_user(email="reader@example.com")
    user.groups.add(staff)
    return user


async def _answer(user, server, text=QUESTION):
    server.script(Reply(tokens=["Use the travel desk [1]."]))
    question = await sync_to_async(services.question_create)(
        user=user, conversation=None, text=text
    )
    config = llm.LLMConfig(base_url=server.base_url, api_key="t", model="m", max_retries=0)
    return [e async for e in answer_stream(user=user, question=question, config=config)]


def _sample(name: str, labels: dict | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _client_sees_no_stage_timings(frames: list[dict]) -> None:
    for frame in frames:
        if "timings" in frame:
            assert set(frame["timings"]) <= COARSE | ABOUT_THE_MODEL, frame["timings"]
        text = json.dumps(frame)
        for word in STAGE_WORDS:
            assert f'"{word}' not in text and f"{word}_ms" not in text, (word, frame)


async def test_the_done_frame_and_the_conversation_api_carry_no_per_stage_search_timings(
    reader, llm_server
):
    events = await _answer(reader, llm_server)

    done = events[-1]
    assert done.type == "done"
    assert set(done.timings) == COARSE
    _client_sees_no_stage_timings([e.as_dict() for e in events])

    def detail():
        client = Client()
        client.force_login(reader)
        return client.get(f"/api/conversations/{events[0].conversation_id}").json()

    answer = (await sync_to_async(detail)())["messages"][1]
    assert set(answer["timings"]) == COARSE | ABOUT_THE_MODEL
    _client_sees_no_stage_timings([answer])


@pytest.fixture
def lexical_search_stalls(settings):
    """The lexical side's table is locked by another session, so it hits its time-out."""
    settings.RETRIEVAL_LEXICAL_TIMEOUT_MS = 50
    params = connection.get_connection_params()
    with psycopg.connect(**params) as other:
        other.execute("LOCK TABLE knowledge_lexemestat IN ACCESS EXCLUSIVE MODE")
        yield
        other.rollback()


async def test_a_lexical_time_out_is_counted_and_logged_but_never_told_to_the_client(
    reader, llm_server, lexical_search_stalls, caplog
):
    timeouts = _sample("assistant_search_lexical_timeouts_total")
    lexical = _sample("assistant_search_stage_seconds_count", {"stage": "lexical"})
    vector = _sample("assistant_search_stage_seconds_count", {"stage": "vector"})
    caplog.set_level("INFO", logger="assistant.answering")

    events = await _answer(reader, llm_server)

    assert events[-1].type == "done"  # answered from the vector side alone
    _client_sees_no_stage_timings([e.as_dict() for e in events])
    assert _sample("assistant_search_lexical_timeouts_total") == timeouts + 1
    assert _sample("assistant_search_stage_seconds_count", {"stage": "lexical"}) == lexical + 1
    assert _sample("assistant_search_stage_seconds_count", {"stage": "vector"}) == vector + 1
    lines = [
        r for r in caplog.records if r.name == "assistant.answering" and r.msg == "answer finished"
    ]
    assert len(lines) == 1
    assert lines[0].search["lexical_timed_out"] is True
    assert lines[0].search["lexical_ms"] >= 50
    assert lines[0].message_id == events[-1].message["id"]
