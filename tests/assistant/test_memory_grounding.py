"""Automatic memory keeps only what the person said about themselves (issue 14).

A fact the model proposes is kept only when it is grounded in the person's own words (its
content words are in what they wrote, at a measured threshold), never when it is one of the
extraction prompt's own examples, never when it is punctuation. Each item says where it came
from and whether it was learned; learning is the person's choice, off by default with the
embedded model.
"""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from assistant.memory import extraction as memory_extraction
from assistant.memory import selectors as memory_selectors
from assistant.memory import services as memory_services
from assistant.memory.extraction import GROUNDED_SHARE, LearnedFact, grounded_facts
from assistant.models import Conversation, MemoryItem, Message
from assistant.tasks import after_turn
from tests.support.answering import scripted_settings
from tests.support.openai_server import Reply, ScriptedOpenAI

pipeline_db = pytest.mark.django_db(transaction=True)

# What people wrote, a fact a model proposed, and whether that fact is grounded in what they
# wrote. The threshold (GROUNDED_SHARE) was chosen on these: every faithful paraphrase shares
# all its content words; every fact from elsewhere shares at most two thirds of them.
LABELLED = [
    # faithful: kept
    ("I'm on the payments team; how do refunds work?", "The user is on the payments team.", True),
    ("I work in Lisbon. When is the office open?", "The user works in Lisbon.", True),
    ("please keep answers short", "The user prefers short answers.", True),
    ("Answer in German from now on", "The user prefers answers in German.", True),
    ("I'm a vegetarian, what's in the canteen?", "The user is a vegetarian.", True),
    ("As a data engineer I use Airflow daily", "The user is a data engineer.", True),
    ("I manage the Oslo support desk", "The user manages the Oslo support desk.", True),
    ("My manager is Priya Shah", "The user's manager is Priya Shah.", True),
    ("I moved to Munich last month", "The user moved to Munich.", True),
    ("I am on call every second week", "The user is on call every second week.", True),
    # from elsewhere: dropped
    ("How do I compress a backup with zstd?", "The user works in the Berlin office.", False),
    ("What does VACUUM FULL lock in PostgreSQL?", "The user is a database administrator.", False),
    (
        "I am a senior engineer in Oslo. What is the salary band for my level?",
        "The user's salary band is 123456 kroner per year.",
        False,
    ),
    (
        "I am a senior engineer in Oslo. What is the salary band for my level?",
        "The user earns a confidential salary.",
        False,
    ),
    ("I'm on the payments team", "The user is on the payments team in Dublin.", False),
    ("How many leave days do I get?", "The user gets 30 leave days.", False),
    ("I work in Lisbon", "The user works in the Lisbon office on the Atlas project.", False),
    ("What is our travel policy?", "The user travels often.", False),
]


@pytest.mark.django_db
def test_the_grounding_threshold_separates_the_labelled_facts():
    shares = {
        (said, fact): memory_extraction.grounding_share(fact, said) for said, fact, _ in LABELLED
    }
    grounded = [shares[(s, f)] for s, f, ok in LABELLED if ok]
    ungrounded = [shares[(s, f)] for s, f, ok in LABELLED if not ok]
    # The measurement behind GROUNDED_SHARE: the two groups do not overlap, and the threshold
    # sits between them.
    assert max(ungrounded) < GROUNDED_SHARE <= min(grounded), (grounded, ungrounded)
    for said, fact, ok in LABELLED:
        kept = grounded_facts([LearnedFact(fact)], said)
        assert bool(kept) is ok, (said, fact)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fact",
    [
        *memory_extraction.PROMPT_EXAMPLES,
        "the user works in the reykjavik office",
        "The user works at the Reykjavik office!",
    ],
)
def test_a_copy_of_the_prompts_own_example_is_dropped_even_when_the_words_were_said(fact):
    said = "I work in the Reykjavik office and prefer answers in Icelandic. How do I use zstd?"
    assert grounded_facts([LearnedFact(fact)], said) == []
    # The same statement that is not the example is kept.
    assert grounded_facts(
        [LearnedFact("The user works in the Reykjavik office on Fridays.")], said + " Fridays too."
    )


@pytest.mark.django_db
@pytest.mark.parametrize("fact", ["...", "!!!", " - ", "The user.", "User says"])
def test_a_punctuation_only_or_empty_fact_is_dropped(fact):
    assert grounded_facts([LearnedFact(fact)], "The user says ... !!! - hello") == []


@pytest.mark.django_db
def test_the_prompt_shows_its_examples_from_the_list_the_check_uses():
    messages = memory_extraction._extraction_messages("I like zstd", [])
    for example in memory_extraction.PROMPT_EXAMPLES:
        assert example in messages[0].content


def _turn(user, said: str, answer_text: str = "Use zstd -19 [1].") -> Message:
    conversation = Conversation.objects.create(owner=user, title="Compression")
    question = Message.objects.create(conversation=conversation, role="user", content=said)
    return Message.objects.create(
        conversation=conversation,
        role="assistant",
        content=answer_text,
        reply_to=question,
        status="complete",
    )


def _facts(*texts: str) -> Reply:
    return Reply(tokens=[json.dumps({"facts": list(texts)})])


@pytest.fixture
def model():
    with (
        ScriptedOpenAI(default=Reply(tokens=['{"facts": []}'])) as server,
        override_settings(**scripted_settings(server), MEMORY_AUTO_LEARN=True),
    ):
        yield server


@pipeline_db
def test_the_berlin_example_proposed_for_a_question_about_zstd_is_dropped(make_user, model):
    user = make_user()
    answer = _turn(user, "How do I compress a PostgreSQL dump with zstd?")
    model.script(_facts("The user works in the Berlin office."))

    assert memory_extraction.learn_from_turn(answer_id=answer.pk) == []
    assert not MemoryItem.objects.filter(owner=user).exists()
    assert len(model.requests) == 1  # the model was asked, and its copy refused


@pipeline_db
def test_a_grounded_fact_is_kept_as_learned_with_the_message_it_came_from(make_user, model):
    user = make_user()
    answer = _turn(user, "I'm on the storage team. How do I compress a dump with zstd?")
    model.script(_facts("The user is on the storage team.", "The user compresses dumps daily."))

    assert memory_extraction.learn_from_turn(answer_id=answer.pk) == [
        "The user is on the storage team."
    ]
    item = MemoryItem.objects.get(owner=user)
    assert item.source_message_id == answer.reply_to_id
    assert item.origin == MemoryItem.Origin.LEARNED


@pipeline_db
def test_a_fact_whose_words_come_only_from_the_answer_is_dropped(make_user, model):
    user = make_user()
    answer = _turn(
        user, "How do I compress a dump?", answer_text="Use zstd at level 19 on the Atlas host [1]."
    )
    model.script(_facts("The user uses zstd at level 19 on the Atlas host."))

    assert memory_extraction.learn_from_turn(answer_id=answer.pk) == []
    assert not MemoryItem.objects.filter(owner=user).exists()


@pipeline_db
def test_an_item_the_person_writes_is_theirs_and_an_edit_makes_a_learned_item_theirs(make_user):
    user = make_user()
    written = memory_services.remember(user=user, text="I work nights")
    assert written.origin == MemoryItem.Origin.PERSON
    learned = memory_services.remember(
        user=user, text="The user is on the storage team.", origin=MemoryItem.Origin.LEARNED
    )
    edited = memory_services.item_update(
        user=user, item_id=learned.pk, text="I lead the storage team."
    )
    assert edited.origin == MemoryItem.Origin.PERSON


# --- learning on or off -------------------------------------------------------------------------


def _run_after_turn(answer, *, server_is_embedded: bool, configured=None):
    with ScriptedOpenAI(default=_facts("The user is on the storage team.")) as server:
        with override_settings(
            OPENAI_BASE_URL=server.base_url,
            EMBEDDED_LLM_BASE_URL=server.base_url if server_is_embedded else "",
            MEMORY_AUTO_LEARN=configured,
            LLM_MAX_RETRIES=0,
            LLM_CONTEXT_TOKENS=2048,
        ):
            default = memory_selectors.auto_learn_default()
            after_turn.apply(args=[str(answer.pk)]).get()
        return default, len(server.requests)


@pipeline_db
@pytest.mark.parametrize(("embedded", "expected"), [(True, False), (False, True)])
def test_learning_is_off_by_default_with_the_embedded_model_and_on_with_an_external_one(
    make_user, embedded, expected
):
    user = make_user()
    answer = _turn(user, "I'm on the storage team. How do I use zstd?")
    default, requests = _run_after_turn(answer, server_is_embedded=embedded)
    assert default is expected
    assert MemoryItem.objects.filter(owner=user).exists() is expected
    assert (requests > 0) is expected


@pipeline_db
def test_a_person_who_turns_learning_on_is_learned_from_even_on_the_embedded_model(make_user):
    user = make_user()
    memory_services.set_auto_learn(user=user, on=True)
    answer = _turn(user, "I'm on the storage team. How do I use zstd?")
    _, requests = _run_after_turn(answer, server_is_embedded=True)
    assert requests == 1  # the extraction only: summaries stay off with the embedded model
    assert MemoryItem.objects.get(owner=user).origin == MemoryItem.Origin.LEARNED


@pipeline_db
def test_a_person_who_turns_learning_off_is_never_learned_from(make_user):
    user = make_user()
    memory_services.set_auto_learn(user=user, on=False)
    answer = _turn(user, "I'm on the storage team. How do I use zstd?")
    _, requests = _run_after_turn(answer, server_is_embedded=False)
    assert not MemoryItem.objects.filter(owner=user).exists()
    assert memory_selectors.auto_learn_for(user) is False


# --- the page -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_shows_where_each_item_came_from_with_a_link_to_the_message(client, make_user):
    user = make_user()
    answer = _turn(user, "I'm on the storage team. How do I use zstd?")
    learned = memory_services.remember(
        user=user,
        text="The user is on the storage team.",
        source_message=answer.reply_to,
        origin=MemoryItem.Origin.LEARNED,
    )
    memory_services.remember(user=user, text="I prefer short answers")
    client.force_login(user)
    page = client.get("/memory/").content.decode()
    link = f'href="/c/{answer.conversation_id}#message-{answer.reply_to_id}"'
    assert link in page
    assert "Learned automatically" in page and "Written by you" in page
    assert f'data-id="{learned.pk}" data-kind="fact" data-origin="learned"' in page


@pytest.mark.django_db
def test_the_learning_switch_is_per_person(client, make_user):
    alice, bob = make_user(), make_user()
    client.force_login(alice)
    with override_settings(MEMORY_AUTO_LEARN=None, OPENAI_BASE_URL="https://llm.example/v1"):
        assert "Learning from what you write is <strong>on</strong>" in client.get(
            "/memory/"
        ).content.decode("utf-8")
        response = client.post("/memory/learning", {"on": "0"}, follow=True)
        page = response.content.decode()
        assert "won&#x27;t learn from what you write" in page
        assert "Learning from what you write is <strong>off</strong>" in page
        assert memory_selectors.auto_learn_for(alice) is False
        assert memory_selectors.auto_learn_for(bob) is True


@pytest.mark.django_db
def test_paused_memory_learns_nothing_and_hides_the_learning_switch(client, make_user):
    user = make_user()
    memory_services.set_auto_learn(user=user, on=True)
    memory_services.set_paused(user=user, paused=True)
    assert memory_selectors.auto_learn_for(user) is False
    client.force_login(user)
    assert "Learning from what you write" not in client.get("/memory/").content.decode()
