"""Versions of a turn (regenerate, edit): the earlier versions stay, one version of each turn is
on the path, and the path alone is what the API returns, what reloads show and what the model
reads as history. Services and the API in-process; the socket through open_socket."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import sync_to_async

from assistant import selectors, services
from assistant.models import Conversation, Message
from tests.support.answering import scripted_settings
from tests.support.openai_server import Reply
from tests.support.sockets import open_socket

QUESTION = "How do I book a flight?"


def answer(question: Message, text: str, **fields) -> Message:
    """An answer to ``question`` as the pipeline stores it."""
    return Message.objects.create(
        conversation_id=question.conversation_id,
        role=Message.Role.ASSISTANT,
        reply_to=question,
        content=text,
        **fields,
    )


def regenerated(user, old: Message, text: str) -> Message:
    question = services.answer_supersede_for_regenerate(user=user, message=old)
    return answer(question, text)


def path(conversation: Conversation) -> list[str]:
    return [m.content for m in selectors.visible_messages(conversation)]


def detail(client, conversation) -> dict:
    response = client.get(f"/api/conversations/{conversation.pk}")
    assert response.status_code == 200
    return response.json()


def versions(data) -> list[tuple[str, int, int]]:
    return [
        (m["content"], m["versions"]["index"], m["versions"]["count"]) for m in data["messages"]
    ]


@pytest.fixture
def alice(make_user):
    return make_user(email="alice@example.com")


@pytest.mark.django_db
def test_regenerating_keeps_the_earlier_answer_as_version_1_of_2(client, alice):
    question = services.question_create(user=alice, conversation=None, text=QUESTION)
    first = answer(question, "First answer.")
    second = regenerated(alice, first, "Second answer.")
    conversation = question.conversation
    client.force_login(alice)

    data = detail(client, conversation)
    assert versions(data) == [(QUESTION, 1, 1), ("Second answer.", 2, 2)]
    assert data["messages"][1]["versions"]["ids"] == [str(first.pk), str(second.pk)]

    services.version_switch(user=alice, message=first)
    # What a reload shows: the chosen version, remembered in the database.
    assert versions(detail(client, conversation)) == [(QUESTION, 1, 1), ("First answer.", 1, 2)]
    assert path(conversation) == [QUESTION, "First answer."]


@pytest.mark.django_db
def test_editing_keeps_the_earlier_question_and_its_answer_as_a_version(client, alice):
    q1 = services.question_create(user=alice, conversation=None, text=QUESTION)
    a1 = answer(q1, "By the desk.")
    conversation = q1.conversation
    q2 = services.question_edit(user=alice, message=q1, text="How do I book a train?")
    answer(q2, "By the rail desk.")
    client.force_login(alice)

    assert versions(detail(client, conversation)) == [
        ("How do I book a train?", 2, 2),
        ("By the rail desk.", 1, 1),
    ]
    conversation.refresh_from_db()
    assert conversation.title == "How do I book a train?"  # the title came from the question

    services.version_switch(user=alice, message=q1)
    data = detail(client, conversation)
    assert versions(data) == [(QUESTION, 1, 2), ("By the desk.", 1, 1)]
    assert data["conversation"]["title"] == QUESTION
    assert data["messages"][1]["id"] == str(a1.pk)


@pytest.mark.django_db
def test_a_question_comes_back_with_the_answer_that_was_showing_with_it(alice):
    q1 = services.question_create(user=alice, conversation=None, text=QUESTION)
    a1 = answer(q1, "A1")
    regenerated(alice, a1, "A2")
    services.version_switch(user=alice, message=a1)  # A1 shown again
    q2 = services.question_edit(user=alice, message=q1, text="Edited")
    answer(q2, "B1")

    services.version_switch(user=alice, message=q1)
    assert path(q1.conversation) == [QUESTION, "A1"]
    services.version_switch(user=alice, message=q2)
    assert path(q1.conversation) == ["Edited", "B1"]


@pytest.mark.django_db
def test_an_edit_keeps_a_title_the_person_chose(alice):
    q1 = services.question_create(user=alice, conversation=None, text=QUESTION)
    answer(q1, "By the desk.")
    services.conversation_rename(user=alice, conversation=q1.conversation, title="Travel")
    services.question_edit(user=alice, message=q1, text="How do I book a train?")
    assert Conversation.objects.get(pk=q1.conversation_id).title == "Travel"


@pytest.mark.django_db
def test_editing_a_later_question_leaves_the_title_alone(alice):
    q1 = services.question_create(user=alice, conversation=None, text=QUESTION)
    answer(q1, "By the desk.")
    q2 = services.question_create(user=alice, conversation=q1.conversation, text="And trains?")
    answer(q2, "Also the desk.")
    services.question_edit(user=alice, message=q2, text="And buses?")
    assert Conversation.objects.get(pk=q1.conversation_id).title == QUESTION


@pytest.mark.django_db
def test_choosing_the_version_already_shown_twice_changes_nothing(alice):
    question = services.question_create(user=alice, conversation=None, text=QUESTION)
    first = answer(question, "One")
    second = regenerated(alice, first, "Two")
    for _ in range(2):
        services.version_switch(user=alice, message=second)
        services.version_switch(user=alice, message=question)
    assert path(question.conversation) == [QUESTION, "Two"]


@pytest.mark.django_db
def test_only_the_answer_to_the_last_question_gets_new_versions(alice):
    """Versions of a turn are all written before the next turn, so the path stays in time order."""
    q1 = services.question_create(user=alice, conversation=None, text=QUESTION)
    a1 = answer(q1, "A1")
    q2 = services.question_create(user=alice, conversation=q1.conversation, text="And trains?")
    answer(q2, "A2")
    with pytest.raises(services.ChatError, match="last question"):
        services.answer_supersede_for_regenerate(user=alice, message=a1)
    assert path(q1.conversation) == [QUESTION, "A1", "And trains?", "A2"]


@pytest.mark.django_db
def test_the_model_reads_only_the_versions_on_the_path(alice):
    q1 = services.question_create(user=alice, conversation=None, text="Old question")
    a1 = answer(q1, "Old answer")
    regenerated(alice, a1, "Hidden answer")
    services.version_switch(user=alice, message=a1)
    q2 = services.question_create(user=alice, conversation=q1.conversation, text="Next")

    history = selectors.history_for_prompt(user=alice, question=q2)
    assert [(m.role, m.content) for m in history] == [
        ("user", "Old question"),
        ("assistant", "Old answer"),
    ]


@pytest.mark.django_db
def test_switching_a_turn_a_summary_covers_drops_the_summary_of_the_other_version(alice):
    q1 = services.question_create(user=alice, conversation=None, text="Old question")
    a1 = answer(q1, "Old answer")
    a1b = regenerated(alice, a1, "Hidden answer")
    q2 = services.question_create(user=alice, conversation=q1.conversation, text="Next")
    a2 = answer(q2, "Next answer")
    conversation = q1.conversation
    # A summary made while "Hidden answer" showed, covering the first turn.
    Conversation.objects.filter(pk=conversation.pk).update(
        summary="They were told: Hidden answer.", summary_until=a1b.created_at
    )
    q3 = services.question_create(user=alice, conversation=conversation, text="Third")

    services.version_switch(user=alice, message=a1)

    conversation.refresh_from_db()
    assert (conversation.summary, conversation.summary_until) == ("", None)
    history = selectors.history_for_prompt(user=alice, question=q3)
    assert "Hidden answer" not in " ".join(m.content for m in history)
    assert [m.content for m in history] == ["Old question", "Old answer", "Next", a2.content]


@pytest.mark.django_db
def test_switching_a_turn_after_the_summary_keeps_the_summary(alice):
    q1 = services.question_create(user=alice, conversation=None, text="Old question")
    a1 = answer(q1, "Old answer")
    q2 = services.question_create(user=alice, conversation=q1.conversation, text="Next")
    a2 = answer(q2, "Next answer")
    regenerated(alice, a2, "Other next answer")
    conversation = q1.conversation
    Conversation.objects.filter(pk=conversation.pk).update(
        summary="They asked an old question.", summary_until=a1.created_at
    )

    services.version_switch(user=alice, message=a2)

    conversation.refresh_from_db()
    assert conversation.summary == "They asked an old question."


# --- through the socket -------------------------------------------------------------------


@pytest.fixture
def _scripted(llm_server, settings):
    for name, value in scripted_settings(llm_server).items():
        setattr(settings, name, value)
    yield
    assert llm_server.pending == 0, "a scripted reply was not used"


def snapshot(conversation_id) -> list[tuple]:
    conversation = Conversation.objects.get(pk=conversation_id)
    rows = conversation.messages.order_by("created_at")
    return [(str(m.pk), m.superseded, m.chosen_at) for m in rows] + [conversation.title]


@pytest.mark.django_db(transaction=True)
async def test_switching_back_over_the_socket_is_what_the_model_reads_next(
    _scripted, llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    llm_server.script(
        Reply(tokens=["Version one [1]."]),
        Reply(tokens=["Version two [1]."]),
        Reply(tokens=["Follow-up answer."]),
    )
    tab = await open_socket(user)
    await tab.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    first = (await tab.until_type("done"))[-1]["message"]
    await tab.send(type="regenerate", request_id="r2", message_id=first["id"])
    await tab.until_type("done")

    await tab.send(type="switch_version", message_id=first["id"])
    switched = (await tab.until_type("version.switched"))[-1]
    assert switched == {
        "type": "version.switched",
        "conversation_id": first["conversation_id"],
        "message_id": first["id"],
    }
    await tab.send(
        type="ask", request_id="r3", conversation_id=first["conversation_id"], text="And then?"
    )
    await tab.until_type("done")
    await tab.close()

    sent = json.dumps(llm_server.chat_requests[-1].body["messages"])
    assert "Version one" in sent and "Version two" not in sent


@pytest.mark.django_db(transaction=True)
async def test_switching_to_someone_elses_version_is_not_found_and_changes_nothing(
    _scripted, llm_server, handbook, make_user
):
    alice = await sync_to_async(make_user)(email="alice@example.com")
    mallory = await sync_to_async(make_user)(email="mallory@example.com")
    llm_server.script(Reply(tokens=["One."]), Reply(tokens=["Two."]))
    a = await open_socket(alice)
    await a.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    frames = await a.until_type("done")
    first, question_id = frames[-1]["message"], frames[0]["question_id"]
    await a.send(type="regenerate", request_id="r2", message_id=first["id"])
    await a.until_type("done")
    await a.close()
    before = await sync_to_async(snapshot)(first["conversation_id"])

    m = await open_socket(mallory)
    for message_id in (first["id"], question_id, str(uuid.uuid4()), "not-a-uuid", None, 7):
        await m.send(type="switch_version", message_id=message_id)
        reply = await m.recv()
        assert (reply["type"], reply["code"]) == ("error", "not_found"), (message_id, reply)
    await m.close()
    assert await sync_to_async(snapshot)(first["conversation_id"]) == before


@pytest.mark.django_db(transaction=True)
async def test_switching_while_an_answer_is_written_is_refused(
    _scripted, llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    llm_server.script(
        Reply(tokens=["One."]), Reply(tokens=[f"w{i} " for i in range(200)], delay=0.02)
    )
    tab = await open_socket(user)
    await tab.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    first = (await tab.until_type("done"))[-1]["message"]
    await tab.send(type="regenerate", request_id="r2", message_id=first["id"])
    frames = await tab.until_type("delta")
    writing = next(f["message_id"] for f in frames if f["type"] == "retrieval")

    await tab.send(type="switch_version", message_id=first["id"])
    refused = (await tab.until(lambda f: f["type"] == "error"))[-1]
    assert refused["code"] == "busy"
    await tab.send(type="stop", message_id=writing)
    await tab.until_type("done")
    await tab.close()
    shown = await Message.objects.aget(pk=first["id"])
    assert shown.superseded  # still the earlier version
