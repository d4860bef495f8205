"""The model endpoint fails (issue 15, fault 5), against a real local server that misbehaves on
purpose (``ScriptedOpenAI``) and the real retry policy of ``assistant.llm``.

Before the first token: retries, then the fallback model, then an extractive answer quoting
the passages found for the asker. After some text: the partial answer is kept as failed."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.utils import timezone

from assistant.answering import cache, extractive
from assistant.models import AnswerCacheEntry, Citation, Message
from tests.support.answering import ask, collect, scripted_config
from tests.support.knowledge import HANDBOOK, index_text, make_collection
from tests.support.openai_server import Reply, refused_base_url

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I book a flight?"
SECRET = """# Executive travel

## Booking flights
Executives book flights through the private aviation desk with the code FALCON-7.
"""


def policy(server, **overrides):
    """The real policy, made quick: one retry on each model, a short back-off and time-out."""
    values = {
        "max_retries": 1,
        "fallback_model": "fallback-model",
        "backoff_base": 0.01,
        "read_timeout": 2,
    }
    return scripted_config(server, **{**values, **overrides})


@pytest.fixture
def staff_handbook(make_user):
    """The travel handbook read by the 'staff' group: (collection, a reader in 'staff')."""
    admin = make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    staff = Group.objects.create(name="staff")
    collection = make_collection("Handbook", readers=[staff])
    index_text(collection, "travel.md", HANDBOOK, user=admin)
    reader = make_user(email="reader@example.com")
    reader.groups.add(staff)
    return collection, reader


def text_of(events) -> str:
    return "".join(e.text for e in events if e.type == "delta")


async def test_a_model_down_before_the_first_token_is_retried_then_the_fallback_then_passages_are_quoted(
    staff_handbook, llm_server
):
    _, reader = staff_handbook
    # Four ways to fail before the first token: a 500, an error event as the stream's first
    # chunk, a 502, and a connection cut after the headers.
    llm_server.script(
        Reply.error(500),
        Reply.error_mid_stream(["never sent"], after=0),
        Reply.error(502),
        Reply.dropped(["never sent"], after=0),
    )
    question = await ask(reader, QUESTION)

    events = await collect(reader, question, policy(llm_server))

    # Two tries on the model, two on the fallback, then no more requests.
    assert [r.model for r in llm_server.chat_requests] == [
        "scripted-model",
        "scripted-model",
        "fallback-model",
        "fallback-model",
    ]
    assert [e.type for e in events][0] == "retrieval" and events[-1].type == "done"
    retrieval, done = events[0], events[-1]
    text = text_of(events)
    assert text.startswith(extractive.INTRO)
    assert "> [1] " in text and "travel desk at least fourteen days" in text
    # Every quoted marker resolved to the passage it quotes, as a model's citation would.
    cited = [e for e in events if e.type == "citation"]
    assert cited and [e.number for e in cited] == sorted(e.number for e in cited)
    by_number = {s["n"]: s for s in retrieval.sources}
    for event in cited:
        assert event.source == by_number[event.number]
        assert f"> [{event.number}] " in text
    assert done.message["status"] == "complete" and done.message["extractive"] is True
    assert done.message["model"] == "extractive" and done.message["content"] == text

    answer = await Message.objects.aget(pk=done.message["id"])
    assert (answer.status, answer.model, answer.error) == ("complete", "extractive", "")
    assert answer.content == text
    stored = [c.number async for c in Citation.objects.filter(message=answer).order_by("number")]
    assert stored == [e.number for e in cited]


async def test_a_refused_connection_is_answered_with_the_passages(staff_handbook, llm_server):
    _, reader = staff_handbook
    question = await ask(reader, QUESTION)
    config = policy(llm_server, base_url=refused_base_url())

    events = await asyncio.wait_for(collect(reader, question, config), 30)

    assert events[-1].type == "done" and events[-1].message["extractive"] is True
    assert "travel desk" in text_of(events)
    assert llm_server.requests == []


async def test_a_model_that_stalls_before_the_first_token_is_answered_with_the_passages(
    staff_handbook, llm_server
):
    _, reader = staff_handbook
    llm_server.script(Reply.hanging(), Reply.hanging())
    question = await ask(reader, QUESTION)
    config = policy(llm_server, read_timeout=0.5, max_retries=0)

    events = await asyncio.wait_for(collect(reader, question, config), 30)

    assert [r.model for r in llm_server.chat_requests] == ["scripted-model", "fallback-model"]
    assert events[-1].type == "done" and events[-1].message["extractive"] is True


async def test_the_fallback_model_answering_is_a_normal_answer(staff_handbook, llm_server):
    _, reader = staff_handbook
    llm_server.script(
        Reply.error(500), Reply.error(500), Reply(tokens=["Use the travel desk [1]."])
    )
    question = await ask(reader, QUESTION)
    events = await collect(reader, question, policy(llm_server))
    assert events[-1].message["extractive"] is False
    assert events[-1].message["model"] == "fallback-model"
    assert text_of(events) == "Use the travel desk [1]."


async def test_an_extractive_answer_is_never_cached(staff_handbook, llm_server, settings):
    settings.ANSWER_CACHE_SECONDS = 3600
    _, reader = staff_handbook
    llm_server.script(*[Reply.error(500)] * 4)
    first = await collect(reader, await ask(reader, QUESTION), policy(llm_server))
    assert first[-1].message["extractive"] is True
    assert not await AnswerCacheEntry.objects.aexists()

    # The model is back: the same first question is asked of it, not given the quotes again.
    llm_server.script(Reply(tokens=["Use the travel desk [1]."]))
    second = await collect(reader, await ask(reader, QUESTION), policy(llm_server))
    assert len(llm_server.chat_requests) == 5
    assert second[-1].message["from_cache"] is False
    assert text_of(second) == "Use the travel desk [1]."


async def test_an_extractive_answer_stored_by_any_path_is_never_served_from_the_cache(
    staff_handbook, llm_server, settings
):
    settings.ANSWER_CACHE_SECONDS = 3600
    collection, reader = staff_handbook
    llm_server.script(*[Reply.error(500)] * 4)
    events = await collect(reader, await ask(reader, QUESTION), policy(llm_server))
    answer = await Message.objects.aget(pk=events[-1].message["id"])

    await sync_to_async(cache.store)(key="k", message=answer)
    assert not await AnswerCacheEntry.objects.aexists()
    # An entry written some other way (an older release) is still refused.
    await AnswerCacheEntry.objects.acreate(key="k", message=answer, created_at=timezone.now())
    assert await sync_to_async(cache.lookup)(key="k", collection_ids=[collection.pk]) is None


async def test_a_strangers_extractive_answer_quotes_nothing_from_a_collection_they_cannot_read(
    staff_handbook, llm_server, make_user
):
    collection, reader = staff_handbook
    admin = await sync_to_async(make_user)(email="root@example.com", is_superuser=True)
    executives = await Group.objects.acreate(name="executives")
    secret = await sync_to_async(make_collection)("Executive", readers=[executives])
    await sync_to_async(index_text)(secret, "executive.md", SECRET, user=admin)
    stranger = await sync_to_async(make_user)(email="stranger@example.com")
    await stranger.groups.aadd(await Group.objects.aget(name="staff"))
    llm_server.script(*[Reply.error(500)] * 4)

    events = await collect(stranger, await ask(stranger, QUESTION), policy(llm_server))

    text = text_of(events)
    assert events[-1].message["extractive"] is True and "travel desk" in text
    assert "FALCON" not in text and "private aviation" not in text
    readable = {collection.pk}
    assert {s["collection_id"] for s in events[0].sources} <= readable
    assert all(e.source["collection_id"] in readable for e in events if e.type == "citation")
    answer = await Message.objects.aget(pk=events[-1].message["id"])
    assert {c.collection_id async for c in Citation.objects.filter(message=answer)} <= readable


async def test_evaluation_keeps_the_failure_instead_of_quoting(staff_handbook, llm_server):
    _, reader = staff_handbook
    llm_server.script(*[Reply.error(500)] * 4)
    question = await ask(reader, QUESTION)
    events = await collect(reader, question, policy(llm_server), allow_extractive=False)
    assert events[-1].type == "error" and events[-1].code == "llm_unavailable"
    answer = await Message.objects.aget(pk=events[-1].message_id)
    assert answer.status == "failed" and answer.content == ""


# --- mid-stream ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        Reply.dropped(["Book ", "through ", "the ", "desk"], after=2),
        Reply.error_mid_stream(["Book ", "through ", "the ", "desk"], after=2),
        Reply.stalled(["Book ", "through ", "the ", "desk"], after=2),
    ],
    ids=["connection-cut", "error-event", "stall"],
)
async def test_a_model_dying_mid_answer_keeps_the_partial_text_as_failed(
    staff_handbook, llm_server, reply
):
    _, reader = staff_handbook
    llm_server.script(reply)
    question = await ask(reader, QUESTION)

    events = await asyncio.wait_for(
        collect(reader, question, policy(llm_server, read_timeout=0.5)), 30
    )

    error = events[-1]
    assert error.type == "error" and error.code == "llm_stream_broken"
    assert "interrupted" in error.message and "try again" in error.message
    assert text_of(events) == "Book through "
    # Once text has been shown, nothing is retried and nothing is quoted in its place.
    assert len(llm_server.chat_requests) == 1
    answer = await Message.objects.aget(pk=error.message_id)
    assert (answer.status, answer.content) == ("failed", "Book through ")
    assert answer.error == error.message and answer.model != "extractive"
