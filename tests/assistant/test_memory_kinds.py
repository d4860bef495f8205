"""Preferences on how to answer are always applied; facts only when relevant (issue 15).

Similarity to the question chose every memory item, and "I prefer short answers" is similar to
no question, so it was never applied. Items are classified when saved (a rule on the words,
measured on the examples below; the person can change the kind), preferences go with every
answer (capped), facts are chosen by relevance as before.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from assistant import services
from assistant.answering.pipeline import answer_stream
from assistant.memory import selectors as memory_selectors
from assistant.memory import services as memory_services
from assistant.models import MemoryItem
from tests.support.answering import scripted_config, scripted_settings
from tests.support.knowledge import index_text, make_collection
from tests.support.openai_server import Reply, ScriptedOpenAI

PREFERENCE, FACT = MemoryItem.Kind.PREFERENCE, MemoryItem.Kind.FACT

# Measured: the rule classifies every one of these as labelled.
EXAMPLES = [
    ("I prefer short answers", PREFERENCE),
    ("The user prefers answers in German.", PREFERENCE),
    ("Always answer in French", PREFERENCE),
    ("Please answer with bullet points", PREFERENCE),
    ("Respond briefly", PREFERENCE),
    ("Keep it short", PREFERENCE),
    ("Please be concise", PREFERENCE),
    ("Never use emojis", PREFERENCE),
    ("I like tables for comparisons", PREFERENCE),
    ("Use metric units", PREFERENCE),
    ("Don't use jargon", PREFERENCE),
    ("The user wants detailed explanations.", PREFERENCE),
    ("Reply in Spanish", PREFERENCE),
    ("I work in the Berlin office", FACT),
    ("The user is on the payments team.", FACT),
    ("The user prefers vegetarian food.", FACT),
    ("I never drink coffee", FACT),
    ("My manager is Priya Shah", FACT),
    ("The user speaks German.", FACT),
    ("I like hiking", FACT),
    ("I'm allergic to peanuts", FACT),
    ("The user always works from home on Fridays.", FACT),
]


@pytest.mark.parametrize(("text", "kind"), EXAMPLES)
def test_items_are_classified_as_preference_or_fact_by_their_words(text, kind):
    assert memory_services.classify_kind(text) == kind


@pytest.mark.django_db
def test_the_kind_is_stored_when_saved_and_the_person_can_change_it(client, make_user):
    user = make_user()
    preference = memory_services.remember(user=user, text="I prefer short answers")
    fact = memory_services.remember(user=user, text="I like hiking")
    assert (preference.kind, fact.kind) == (PREFERENCE, FACT)
    client.force_login(user)
    response = client.post(
        f"/memory/{fact.pk}/edit", {"text": "I like hiking", "kind": "preference"}
    )
    assert response.status_code == 302
    assert MemoryItem.objects.get(pk=fact.pk).kind == PREFERENCE


@pytest.mark.django_db
def test_an_unknown_kind_is_refused_with_a_clear_message(client, make_user):
    user = make_user()
    item = memory_services.remember(user=user, text="I like hiking")
    client.force_login(user)
    page = client.post(
        f"/memory/{item.pk}/edit", {"text": "I like hiking", "kind": "system"}, follow=True
    ).content.decode()
    assert "Choose whether this is about you or about how to answer." in page
    assert MemoryItem.objects.get(pk=item.pk).kind == FACT


@pytest.mark.django_db
def test_preferences_are_capped_in_number_and_size(make_user):
    user = make_user()
    for text in (
        "I prefer short answers",
        "Always answer in German",
        "Never use emojis",
        "Use metric units",
        "Please format code with comments",
    ):
        memory_services.remember(user=user, text=text)
    assert MemoryItem.objects.filter(owner=user, kind=PREFERENCE).count() == 5
    chosen = memory_selectors.preferences_for_answer(user=user)
    assert len(chosen) == memory_selectors.PREFERENCES_IN_PROMPT
    assert sum(len(i.text) for i in chosen) <= memory_selectors.PREFERENCE_CHARS_IN_PROMPT
    long = "Please answer in bullet points " + "and with tables " * 16
    memory_services.remember(user=user, text=long[:300])
    chosen = memory_selectors.preferences_for_answer(user=user)
    assert sum(len(i.text) for i in chosen) <= memory_selectors.PREFERENCE_CHARS_IN_PROMPT


@pytest.mark.django_db(transaction=True)
async def test_a_preference_reaches_the_model_for_an_unrelated_question_and_unrelated_facts_do_not(
    make_user,
):
    user = await sync_to_async(make_user)()
    admin = await sync_to_async(make_user)(email="admin@example.com", is_superuser=True)
    collection = await sync_to_async(make_collection)("Ops", everyone=True)
    await sync_to_async(index_text)(
        collection,
        "zstd.md",
        "# Compression\n\nConfigure zstd compression levels with -1 (fast) to -19 (small).",
        user=admin,
    )
    for text in ("I prefer short answers", "I have a cat called Miso", "I play the cello"):
        await sync_to_async(memory_services.remember)(user=user, text=text)
    with (
        ScriptedOpenAI(default=Reply(tokens=["I can't find that."])) as server,
        override_settings(**scripted_settings(server)),
    ):
        question = await sync_to_async(services.question_create)(
            user=user, conversation=None, text="How do I configure zstd compression levels?"
        )
        events = [
            e
            async for e in answer_stream(
                user=user, question=question, config=scripted_config(server)
            )
        ]
    system = server.requests[-1].body["messages"][0]["content"]
    assert "I prefer short answers" in system
    assert "cat called Miso" not in system and "cello" not in system
    assert [m["text"] for m in events[0].memory] == ["I prefer short answers"]
