"""The answer cache: identical first questions over exactly the same knowledge get the stored
answer at once; nothing is ever shared across different access, older knowledge or a private
prompt. Real database, real embeddings, a scripted model server that counts its calls."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from assistant import services
from assistant.answering import cache
from assistant.memory import services as memory_services
from assistant.models import AnswerCacheEntry, Citation, Feedback, Message
from knowledge import embeddings
from knowledge.models import Chunk, Source
from knowledge.selectors import knowledge_versions
from tests.support.answering import ask, collect, retry_once_config
from tests.support.knowledge import HANDBOOK, index_text, make_collection
from tests.support.openai_server import Reply, ScriptedOpenAI

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = ["Book flights through the travel desk", " at least fourteen days before departure [1]."]
QUESTION = "How do I book a flight?"


@pytest.fixture
def llm_server():
    with ScriptedOpenAI(default=Reply(tokens=ANSWER)) as server:
        yield server


@pytest.fixture
def world(make_user):
    """Handbook read by 'staff'; Secrets read by 'hr'. ada and bob are staff, hana staff + hr."""
    admin = make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    staff, hr = Group.objects.create(name="staff"), Group.objects.create(name="hr")
    handbook = make_collection("Handbook", readers=[staff])
    index_text(handbook, "travel.md", HANDBOOK, user=admin)
    secrets = make_collection("Secrets", readers=[hr])
    index_text(
        secrets, "bands.md", "# Salary bands\n\nA senior engineer earns 123456 kroner.", user=admin
    )
    people = {}
    for name, groups in (("ada", [staff]), ("bob", [staff]), ("hana", [staff, hr])):
        people[name] = make_user(email=f"{name}@example.com", full_name=name.title() + " Lovelace")
        people[name].groups.add(*groups)
    return {"admin": admin, "handbook": handbook, "secrets": secrets, **people}


async def answer(user, text, server, conversation=None, **kwargs):
    question = await ask(user, text, conversation)
    events = await collect(user, question, retry_once_config(server), **kwargs)
    assert events[-1].type == "done", events[-1]
    return events, await Message.objects.aget(pk=events[-1].message["id"])


async def test_an_identical_first_question_is_answered_at_once_from_the_cache(world, llm_server):
    _, first = await answer(world["ada"], QUESTION, llm_server)
    assert not first.from_cache and len(llm_server.requests) == 1

    events, second = await answer(world["bob"], "  how do I BOOK a flight ", llm_server)

    assert len(llm_server.requests) == 1  # the model was not asked again
    assert [e.type for e in events] == ["retrieval", "delta", "citation", "done"]
    assert "".join(e.text for e in events if e.type == "delta") == first.content
    assert events[-1].message["from_cache"] is True
    assert second.from_cache and second.cached_from_id == first.pk
    assert second.status == Message.Status.COMPLETE and second.content == first.content
    assert second.first_token_ms is not None and second.first_token_ms < 5000
    cited = [c async for c in Citation.objects.filter(message=second)]
    assert [c.number for c in cited] == [1] and "travel desk" in cited[0].quote
    # The copy lives in bob's own conversation, not ada's.
    assert await sync_to_async(lambda: second.conversation.owner_id)() == world["bob"].pk
    entry = await AnswerCacheEntry.objects.aget()
    assert entry.message_id == first.pk and entry.hits == 1


async def test_people_who_can_read_different_collections_never_share_an_entry(world, llm_server):
    await answer(world["hana"], QUESTION, llm_server)  # hana also reads Secrets
    _, bob_answer = await answer(world["bob"], QUESTION, llm_server)
    assert not bob_answer.from_cache and len(llm_server.requests) == 2

    # And the other way round: what bob's narrower scope produced is not hana's either.
    await AnswerCacheEntry.objects.all().adelete()
    await answer(world["bob"], QUESTION, llm_server)
    _, hana_answer = await answer(world["hana"], QUESTION, llm_server)
    assert not hana_answer.from_cache and len(llm_server.requests) == 4
    assert await AnswerCacheEntry.objects.acount() == 2


async def test_a_collection_narrowed_by_the_asker_is_another_key(world, llm_server):
    await answer(world["hana"], QUESTION, llm_server)
    handbook_only = [world["handbook"].pk]
    _, narrowed = await answer(world["hana"], QUESTION, llm_server, collection_ids=handbook_only)
    assert not narrowed.from_cache and len(llm_server.requests) == 2
    _, again = await answer(world["hana"], QUESTION, llm_server, collection_ids=handbook_only)
    assert again.from_cache and len(llm_server.requests) == 2


async def test_a_group_lost_after_the_answer_changes_the_key_at_once(world, llm_server):
    await answer(world["hana"], QUESTION, llm_server)
    hr = await Group.objects.aget(name="hr")
    await sync_to_async(world["hana"].groups.remove)(hr)
    _, after = await answer(world["hana"], QUESTION, llm_server)
    assert not after.from_cache and len(llm_server.requests) == 2


async def test_an_edited_source_invalidates_the_entry(world, llm_server):
    await answer(world["ada"], QUESTION, llm_server)
    # An edit by raw SQL, as a shell or a migration could make: the database still notices.
    with_sql = sync_to_async(
        lambda: connection.cursor().execute(
            "UPDATE knowledge_chunk SET text = text || ' Trains too.' WHERE ordinal = 0"
        )
    )
    await with_sql()
    _, after_edit = await answer(world["bob"], QUESTION, llm_server)
    assert not after_edit.from_cache and len(llm_server.requests) == 2


async def test_a_source_added_to_the_collection_invalidates_the_entry(world, llm_server):
    await answer(world["ada"], QUESTION, llm_server)
    await sync_to_async(index_text)(
        world["handbook"], "trains.md", "# Trains\n\nTrains are booked online.", user=world["admin"]
    )
    _, after = await answer(world["bob"], QUESTION, llm_server)
    assert not after.from_cache and len(llm_server.requests) == 2


@pytest.mark.parametrize(
    "change",
    [
        "INSERT a source",
        "rename a source",
        "move a source",
        "edit a chunk",
        "delete a chunk",
        "delete a source",
    ],
)
def test_every_change_to_what_retrieval_reads_gives_a_new_knowledge_version(world, change):
    handbook, secrets = world["handbook"], world["secrets"]
    source = Source.objects.get(collection=handbook)
    before = knowledge_versions([handbook.pk, secrets.pk])
    if change == "INSERT a source":
        Source.objects.create(collection=handbook, kind=Source.Kind.URL, name="https://x.test/")
    elif change == "rename a source":
        Source.objects.filter(pk=source.pk).update(name="renamed.md")
    elif change == "move a source":
        Source.objects.filter(pk=source.pk).update(collection=secrets)
    elif change == "edit a chunk":
        Chunk.objects.filter(source=source, ordinal=0).update(text="Something else entirely.")
    elif change == "delete a chunk":
        Chunk.objects.filter(source=source, ordinal=0).delete()
    else:
        source.delete()
    after = knowledge_versions([handbook.pk, secrets.pk])
    assert after[handbook.pk] != before[handbook.pk]
    if change == "move a source":
        assert after[secrets.pk] != before[secrets.pk]
    else:
        assert after[secrets.pk] == before[secrets.pk]


def test_progress_updates_do_not_change_the_knowledge_version(world):
    handbook = world["handbook"]
    before = knowledge_versions([handbook.pk])
    Source.objects.filter(collection=handbook).update(progress=42, error="")
    assert knowledge_versions([handbook.pk]) == before


async def test_a_hit_is_rechecked_against_the_askers_access(world, llm_server):
    """A poisoned entry (bob's key pointing at an answer whose passage is in Secrets) is
    refused, and the model answers afresh."""
    _, hana_answer = await answer(world["hana"], "What does a senior engineer earn?", llm_server)
    secret_passages = hana_answer.sources
    assert any(s["collection_id"] == world["secrets"].pk for s in secret_passages)
    await Message.objects.filter(pk=hana_answer.pk).aupdate(unsupported=[])
    scope = await sync_to_async(knowledge_versions)([world["handbook"].pk])
    bob_key = await sync_to_async(cache.key)(
        question=QUESTION, knowledge_versions=scope, config=retry_once_config(llm_server)
    )
    await AnswerCacheEntry.objects.acreate(
        key=bob_key, message=hana_answer, created_at=timezone.now()
    )

    events, bob_answer = await answer(world["bob"], QUESTION, llm_server)

    assert not bob_answer.from_cache
    assert all(s["collection_id"] != world["secrets"].pk for s in events[0].sources)
    assert "123456" not in bob_answer.content
    assert "kroner" not in str([e.as_dict() for e in events])


async def test_a_follow_up_question_is_neither_served_nor_stored(world, llm_server):
    _, first = await answer(world["ada"], "How are meals abroad reimbursed?", llm_server)
    conversation = await sync_to_async(lambda: first.conversation)()
    await answer(world["bob"], QUESTION, llm_server)  # stored: bob's first question
    _, follow_up = await answer(world["ada"], QUESTION, llm_server, conversation=conversation)
    assert not follow_up.from_cache and len(llm_server.requests) == 3
    assert not await AnswerCacheEntry.objects.filter(message=follow_up).aexists()


async def test_an_answer_given_a_memory_item_is_neither_served_nor_stored(world, llm_server):
    await answer(world["bob"], QUESTION, llm_server)
    await sync_to_async(memory_services.remember)(
        user=world["ada"], text="I always book flights in business class"
    )
    _, with_memory = await answer(world["ada"], QUESTION, llm_server)
    assert with_memory.memory_used, "the memory item should have been relevant"
    assert not with_memory.from_cache and len(llm_server.requests) == 2
    assert not await AnswerCacheEntry.objects.filter(message=with_memory).aexists()


async def test_a_cacheable_prompt_carries_no_name_and_a_personal_one_does(world, llm_server):
    _, first = await answer(world["ada"], QUESTION, llm_server)
    assert "Ada" not in llm_server.requests[0].body["messages"][0]["content"]
    conversation = await sync_to_async(lambda: first.conversation)()
    await answer(world["ada"], "And trains?", llm_server, conversation=conversation)
    assert "Ada" in llm_server.requests[1].body["messages"][0]["content"]


async def test_regenerating_asks_the_model_afresh_and_replaces_the_entry(world, llm_server):
    _, first = await answer(world["ada"], QUESTION, llm_server)
    _, copy = await answer(world["bob"], QUESTION, llm_server)
    assert copy.from_cache
    question = await sync_to_async(services.answer_supersede_for_regenerate)(
        user=world["bob"], message=copy
    )
    llm_server.script(Reply(tokens=["Flights are booked through the travel desk [1]."]))
    events = await collect(world["bob"], question, retry_once_config(llm_server), use_cache=False)
    fresh = await Message.objects.aget(pk=events[-1].message["id"])
    assert not fresh.from_cache and len(llm_server.requests) == 2
    entry = await AnswerCacheEntry.objects.aget()
    assert entry.message_id == fresh.pk  # the newest answer is the one given next


async def test_a_thumbs_down_on_the_answer_or_a_copy_stops_its_reuse(world, llm_server, make_user):
    _, first = await answer(world["ada"], QUESTION, llm_server)
    _, copy = await answer(world["bob"], QUESTION, llm_server)
    assert copy.from_cache
    await sync_to_async(services.feedback_give)(
        user=world["bob"], message=copy, rating=-1, comment=""
    )
    assert await Feedback.objects.acount() == 1
    carol = await sync_to_async(make_user)(email="carol@example.com")
    await sync_to_async(carol.groups.add)(await Group.objects.aget(name="staff"))
    _, third = await answer(carol, QUESTION, llm_server)
    assert not third.from_cache and len(llm_server.requests) == 2


async def test_an_answer_with_an_unsupported_citation_is_not_stored(world, llm_server):
    llm_server.script(Reply(tokens=["Flights are booked by carrier pigeon from Mars [1]."]))
    _, first = await answer(world["ada"], QUESTION, llm_server)
    assert first.unsupported
    assert not await AnswerCacheEntry.objects.aexists()


async def test_an_expired_entry_is_not_used(world, llm_server, settings):
    await answer(world["ada"], QUESTION, llm_server)
    await AnswerCacheEntry.objects.aupdate(
        created_at=timezone.now() - timedelta(seconds=settings.ANSWER_CACHE_SECONDS + 1)
    )
    _, later = await answer(world["bob"], QUESTION, llm_server)
    assert not later.from_cache and len(llm_server.requests) == 2


async def test_the_cache_can_be_turned_off(world, llm_server, settings):
    settings.ANSWER_CACHE_SECONDS = 0
    await answer(world["ada"], QUESTION, llm_server)
    _, second = await answer(world["bob"], QUESTION, llm_server)
    assert not second.from_cache and len(llm_server.requests) == 2
    assert not await AnswerCacheEntry.objects.aexists()


async def test_deleting_the_original_conversation_deletes_its_entry(world, llm_server):
    _, first = await answer(world["ada"], QUESTION, llm_server)
    await sync_to_async(lambda: first.conversation.delete())()
    assert not await AnswerCacheEntry.objects.aexists()
    _, later = await answer(world["bob"], QUESTION, llm_server)
    assert not later.from_cache


def test_query_vectors_are_cached_by_model_and_text():
    embeddings.reset_embedder()
    vector = embeddings.embed_query("How do I book a flight?")
    name = embeddings.get_embedder().name
    assert (name, "How do I book a flight?") in embeddings._queries
    assert embeddings.embed_query("How do I book a flight?") == vector
    assert len(embeddings._queries) == 1
    embeddings.reset_embedder()
    assert not embeddings._queries


async def test_two_identical_questions_answered_at_once_leave_one_entry_and_no_error(
    world, llm_server
):
    """Both miss, both are answered by the model, both store under the same key: the second
    store replaces the first instead of failing on the unique key."""
    import asyncio

    first_q = await ask(world["ada"], QUESTION)
    second_q = await ask(world["bob"], QUESTION)
    config = retry_once_config(llm_server)
    first, second = await asyncio.gather(
        collect(world["ada"], first_q, config), collect(world["bob"], second_q, config)
    )
    assert first[-1].type == "done" and second[-1].type == "done"
    assert await AnswerCacheEntry.objects.acount() == 1
    stored = await AnswerCacheEntry.objects.aget()
    done_ids = {first[-1].message["id"], second[-1].message["id"]}
    assert str(stored.message_id) in done_ids
