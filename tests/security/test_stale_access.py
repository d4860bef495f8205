"""Stale access: text a person can no longer read stays out of their old conversations.

A person asked, was answered from a restricted document, then lost access to it (their group
was removed, the collection's visibility or groups changed, the source was moved to a
collection they cannot read). Their old conversation must show that passage as "no longer
available" (its number kept, nothing of its text or title), must not send the old answer, its
passages or a summary made from them back to the model when the conversation continues, and
memory must never learn anything that only a passage or an answer said.

Real PostgreSQL and local embeddings; the model is a scripted OpenAI-compatible server that
records what it was sent.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from assistant import services
from assistant.answering.pipeline import answer_stream
from assistant.memory import extraction as memory_extraction
from assistant.models import Conversation, MemoryItem, Message
from assistant.selectors import UNREADABLE_ANSWER_PLACEHOLDER
from knowledge import services as knowledge_services
from knowledge.models import Collection, Source
from tests.support import scenarios
from tests.support.answering import scripted_config
from tests.support.openai_server import Reply
from tests.support.scenarios import ANSWER, FOLLOW_UP, PASSAGE_TEXT, SALARIES
from tests.support.scenarios import SALARY_QUESTION as QUESTION

pytestmark = pytest.mark.django_db(transaction=True)

LOSSES = [
    "remove_group",
    "regroup_collection",
    "close_collection",
    "move_source",
    "move_source_by_save",
]


@pytest.fixture
def world(make_user):
    return scenarios.StaleAccessWorld(make_user)


def _prepare(world: scenarios.StaleAccessWorld, loss: str) -> None:
    if loss == "close_collection":
        Collection.objects.filter(pk=world.pay.pk).update(visibility=Collection.Visibility.EVERYONE)
        world.pay.refresh_from_db()
        world.reader.groups.remove(world.hr)


async def _ask(user, conversation, server, text):
    question = await sync_to_async(services.question_create)(
        user=user, conversation=conversation, text=text
    )
    return [
        e async for e in answer_stream(user=user, question=question, config=scripted_config(server))
    ]


async def _answered_from_the_restricted_document(
    world: scenarios.StaleAccessWorld, server
) -> Conversation:
    server.script(Reply(tokens=[ANSWER]))
    events = await _ask(world.reader, None, server, QUESTION)
    assert any(e.type == "citation" for e in events), "the answer must cite the restricted passage"
    answer = await Message.objects.aget(pk=events[-1].message["id"])
    assert "123456" in json.dumps(answer.sources)
    return await Conversation.objects.aget(pk=answer.conversation_id)


def _detail(user, conversation) -> dict:
    client = Client()
    client.force_login(user)
    response = client.get(f"/api/conversations/{conversation.pk}")
    assert response.status_code == 200
    return response.json()


# --- the conversation page --------------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
async def test_after_losing_access_the_old_citation_shows_as_unavailable_with_none_of_its_text(
    world, llm_server, loss
):
    await sync_to_async(_prepare)(world, loss)
    conversation = await _answered_from_the_restricted_document(world, llm_server)
    before = await sync_to_async(_detail)(world.reader, conversation)
    assert before["messages"][1]["citations"][0]["text"].startswith("The confidential salary band")

    await sync_to_async(getattr(world, loss))()

    detail = await sync_to_async(_detail)(world.reader, conversation)
    answer = detail["messages"][1]
    assert answer["citations"] == [{"number": 1, "unavailable": True}]
    assert {"n": 1, "unavailable": True} in answer["sources"]
    body = json.dumps(detail, ensure_ascii=False).replace(answer["content"], "")
    for text in PASSAGE_TEXT:
        assert text not in body


async def test_a_deleted_source_stays_quoted_while_its_last_collection_is_readable(
    world, llm_server
):
    conversation = await _answered_from_the_restricted_document(world, llm_server)
    source = await Source.objects.select_related("collection").aget(pk=world.salaries.pk)
    await sync_to_async(knowledge_services.source_delete)(user=world.admin, source=source)

    answer = (await sync_to_async(_detail)(world.reader, conversation))["messages"][1]
    assert answer["citations"][0]["text"].startswith("The confidential salary band")

    await sync_to_async(world.remove_group)()
    answer = (await sync_to_async(_detail)(world.reader, conversation))["messages"][1]
    assert answer["citations"] == [{"number": 1, "unavailable": True}]


async def test_a_source_moved_away_and_then_deleted_stays_unavailable(world, llm_server):
    """The copy on the citation still names the old collection; the audit trail names the last."""
    conversation = await _answered_from_the_restricted_document(world, llm_server)
    await sync_to_async(world.move_source)()
    source = await Source.objects.select_related("collection").aget(pk=world.salaries.pk)
    await sync_to_async(knowledge_services.source_delete)(user=world.admin, source=source)

    answer = (await sync_to_async(_detail)(world.reader, conversation))["messages"][1]
    assert answer["citations"] == [{"number": 1, "unavailable": True}]


# --- what goes back to the model --------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
async def test_continuing_the_conversation_after_losing_access_sends_the_model_none_of_it(
    world, llm_server, loss
):
    await sync_to_async(_prepare)(world, loss)
    conversation = await _answered_from_the_restricted_document(world, llm_server)
    await sync_to_async(getattr(world, loss))()

    llm_server.script(Reply(tokens=["Level L5 [1]."]))
    events = await _ask(world.reader, conversation, llm_server, FOLLOW_UP)

    assert events[-1].type == "done", events[-1]
    sent = llm_server.requests[-1].body["messages"]
    prompt = json.dumps(sent, ensure_ascii=False)
    assert "ANSWERSECRET" not in prompt
    for text in PASSAGE_TEXT:
        assert text not in prompt
    # The person's own question stays; the answer is a placeholder, so the turns still alternate.
    assert {"role": "user", "content": QUESTION} in sent
    assert {"role": "assistant", "content": UNREADABLE_ANSWER_PLACEHOLDER} in sent


async def test_a_summary_made_from_an_answer_now_unreadable_is_not_sent(world, llm_server):
    conversation = await _answered_from_the_restricted_document(world, llm_server)
    # A long conversation was summarised after the answer; the summary repeats the figure.
    await Conversation.objects.filter(pk=conversation.pk).aupdate(
        summary="SUMMARYSECRET: the senior band is 123456 kroner.", summary_until=timezone.now()
    )
    llm_server.script(Reply(tokens=["Level L5 [1]."]))
    await _ask(world.reader, conversation, llm_server, FOLLOW_UP)
    assert "SUMMARYSECRET" in json.dumps(llm_server.requests[-1].body["messages"])

    await sync_to_async(world.remove_group)()
    llm_server.script(Reply(tokens=["Level L5 [1]."]))
    await _ask(world.reader, conversation, llm_server, "Which level is a junior engineer?")

    prompt = json.dumps(llm_server.requests[-1].body["messages"], ensure_ascii=False)
    assert "SUMMARYSECRET" not in prompt and "ANSWERSECRET" not in prompt
    for text in PASSAGE_TEXT:
        assert text not in prompt
    # The turns the summary stood in for come back as turns, the answer as a placeholder.
    assert QUESTION in prompt and UNREADABLE_ANSWER_PLACEHOLDER in prompt


async def test_a_reader_who_keeps_access_still_gets_the_earlier_answer_in_the_history(
    world, llm_server
):
    conversation = await _answered_from_the_restricted_document(world, llm_server)
    llm_server.script(Reply(tokens=["Level L5 [1]."]))
    await _ask(world.reader, conversation, llm_server, FOLLOW_UP)
    assert {"role": "assistant", "content": ANSWER} in llm_server.requests[-1].body["messages"]


# --- memory -----------------------------------------------------------------------------------


def test_memory_never_learns_a_fact_only_a_passage_or_answer_held_even_when_the_model_proposes_it(
    world, llm_server, settings
):
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = llm_server.base_url, "t"
    settings.LLM_MODEL, settings.LLM_MAX_RETRIES = "scripted-model", 0
    conversation = Conversation.objects.create(owner=world.reader)
    question = Message.objects.create(
        conversation=conversation,
        role="user",
        content="I am a senior engineer in Oslo. What is the salary band for my level?",
    )
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content=ANSWER,
        reply_to=question,
        status="complete",
        sources=[
            {
                "n": 1,
                "source_id": world.salaries.pk,
                "collection_id": world.pay.pk,
                "text": SALARIES,
            }
        ],
    )
    llm_server.script(
        Reply(
            tokens=[
                json.dumps(
                    {
                        "facts": [
                            "The user is a senior engineer in Oslo.",
                            "The user's salary band is 123456 kroner per year.",
                            "The user earns a confidential salary.",
                        ]
                    }
                )
            ]
        )
    )

    learned = memory_extraction.learn_from_turn(answer_id=answer.pk)

    assert learned == ["The user is a senior engineer in Oslo."]
    stored = list(MemoryItem.objects.filter(owner=world.reader).values_list("text", flat=True))
    assert stored == ["The user is a senior engineer in Oslo."]
    # The model was shown only what the person wrote: no answer, no passage.
    shown = json.dumps(llm_server.requests[-1].body["messages"], ensure_ascii=False)
    assert "ANSWERSECRET" not in shown and "123456" not in shown and "confidential" not in shown
    assert "senior engineer in Oslo" in shown
