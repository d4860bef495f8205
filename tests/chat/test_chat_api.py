"""The chat's JSON API (docs/websocket-protocol.md, "HTTP") through Django's test client."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth.models import Group

from assistant.models import Citation, Conversation, Feedback, Message
from tests.support.knowledge import make_collection

pytestmark = pytest.mark.django_db


def conversation_with_answer(owner, *, title, question, answer, sources=(), citations=()):
    conversation = Conversation.objects.create(owner=owner, title=title)
    q = Message.objects.create(conversation=conversation, role="user", content=question)
    a = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content=answer,
        reply_to=q,
        sources=list(sources),
    )
    for source in citations:
        Citation.objects.create(
            message=a,
            collection_id=source["collection_id"],
            number=source["n"],
            quote=source["text"],
            document_title=source["title"],
            source_name=source["source_name"],
            heading="",
            page=None,
        )
    return conversation


def source(n, collection, text):
    return {
        "n": n,
        "chunk_id": None,
        "source_id": None,
        "collection_id": collection.pk,
        "title": f"Doc {n}",
        "source_name": f"doc{n}.md",
        "url": "",
        "heading": "",
        "page": None,
        "text": text,
    }


@pytest.fixture
def alice(make_user):
    return make_user(email="alice@example.com")


@pytest.fixture
def bob(make_user):
    return make_user(email="bob@example.com")


@pytest.fixture
def client_for(client):
    def log_in(user):
        client.force_login(user)
        return client

    return log_in


def post_json(client, url, data):
    return client.post(url, data=json.dumps(data), content_type="application/json")


# --- list, detail, rename, delete -------------------------------------------------------


def test_the_list_has_only_my_conversations_newest_first(client_for, alice, bob):
    older = conversation_with_answer(alice, title="Older", question="q1", answer="a1")
    newer = conversation_with_answer(alice, title="Newer", question="q2", answer="a2")
    conversation_with_answer(bob, title="Bob's", question="q3", answer="a3")

    response = client_for(alice).get("/api/conversations")

    assert response.status_code == 200
    listed = response.json()["conversations"]
    assert [c["id"] for c in listed] == [str(newer.pk), str(older.pk)]
    assert {"id", "title", "origin", "updated_at"} <= set(listed[0])
    assert listed[0]["title"] == "Newer" and listed[0]["origin"] == "web"


def test_the_detail_has_messages_sources_citations_and_my_feedback(client_for, alice):
    handbook = make_collection("Handbook", everyone=True)
    found = [
        source(1, handbook, "Book through the travel desk."),
        source(2, handbook, "Meals: 60 euros."),
    ]
    conversation = conversation_with_answer(
        alice,
        title="Travel",
        question="How do I book?",
        answer="Use the desk [1].",
        sources=found,
        citations=found[:1],
    )
    answer = conversation.messages.get(role="assistant")
    Feedback.objects.create(message=answer, user=alice, rating=-1, comment="too short")

    data = client_for(alice).get(f"/api/conversations/{conversation.pk}").json()

    assert data["conversation"]["id"] == str(conversation.pk)
    question_json, answer_json = data["messages"]
    assert (question_json["role"], question_json["content"]) == ("user", "How do I book?")
    assert answer_json["content"] == "Use the desk [1]." and answer_json["status"] == "complete"
    assert answer_json["reply_to"] == question_json["id"]
    assert [s["n"] for s in answer_json["sources"]] == [1, 2]
    assert [(c["number"], c["text"], c["title"]) for c in answer_json["citations"]] == [
        (1, "Book through the travel desk.", "Doc 1")
    ]
    assert answer_json["feedback"] == {"rating": -1, "comment": "too short"}


def test_superseded_messages_are_not_shown(client_for, alice):
    conversation = conversation_with_answer(alice, title="T", question="first", answer="old answer")
    conversation.messages.filter(role="assistant").update(superseded=True)
    data = client_for(alice).get(f"/api/conversations/{conversation.pk}").json()
    assert [m["content"] for m in data["messages"]] == ["first"]


def test_rename_changes_the_title_and_accepts_form_or_json(client_for, alice):
    conversation = conversation_with_answer(alice, title="Old", question="q", answer="a")
    client = client_for(alice)

    response = post_json(
        client, f"/api/conversations/{conversation.pk}/rename", {"title": "  New   title "}
    )
    assert response.status_code == 200 and response.json()["conversation"]["title"] == "New title"
    conversation.refresh_from_db()
    assert conversation.title == "New title"

    response = client.post(f"/api/conversations/{conversation.pk}/rename", {"title": "From a form"})
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.title == "From a form"

    response = post_json(client, f"/api/conversations/{conversation.pk}/rename", {"title": "   "})
    assert response.status_code == 400 and response.json()["ok"] is False
    conversation.refresh_from_db()
    assert conversation.title == "From a form"


def test_delete_removes_the_conversation_and_its_messages(client_for, alice):
    conversation = conversation_with_answer(alice, title="Doomed", question="q", answer="a")
    response = client_for(alice).post(f"/api/conversations/{conversation.pk}/delete")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()


def test_writes_need_post(client_for, alice):
    conversation = conversation_with_answer(alice, title="Keep", question="q", answer="a")
    client = client_for(alice)
    assert client.get(f"/api/conversations/{conversation.pk}/delete").status_code == 405
    assert client.get(f"/api/conversations/{conversation.pk}/rename?title=x").status_code == 405
    assert Conversation.objects.get(pk=conversation.pk).title == "Keep"


def test_writes_need_the_csrf_token(alice):
    from django.test import Client

    conversation = conversation_with_answer(alice, title="Keep", question="q", answer="a")
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(f"/api/conversations/{conversation.pk}/delete")
    assert response.status_code == 403
    assert Conversation.objects.filter(pk=conversation.pk).exists()

    client.get("/")  # the chat page sets the csrftoken cookie the script sends back
    token = client.cookies["csrftoken"].value
    response = client.post(f"/api/conversations/{conversation.pk}/delete", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


# --- other people's conversations -------------------------------------------------------


def test_another_users_conversation_is_not_found_and_unchanged(client_for, alice, bob):
    conversation = conversation_with_answer(
        bob, title="Bob's secret", question="salary?", answer="lots"
    )
    client = client_for(alice)
    base = f"/api/conversations/{conversation.pk}"

    assert client.get(base).status_code == 404
    assert post_json(client, base + "/rename", {"title": "pwned"}).status_code == 404
    assert client.post(base + "/delete").status_code == 404
    # The same answer as for an id that does not exist at all.
    assert client.get(f"/api/conversations/{uuid.uuid4()}").status_code == 404

    conversation.refresh_from_db()
    assert conversation.title == "Bob's secret" and conversation.owner_id == bob.pk
    assert conversation.messages.count() == 2
    assert client.get("/api/conversations").json()["conversations"] == []


def test_signed_out_requests_are_sent_to_the_login_page(client, alice):
    conversation = conversation_with_answer(alice, title="Mine", question="q", answer="a")
    response = client.get(f"/api/conversations/{conversation.pk}")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.post(f"/api/conversations/{conversation.pk}/delete").status_code == 302
    assert Conversation.objects.filter(pk=conversation.pk).exists()


# --- search -----------------------------------------------------------------------------


def test_search_matches_titles_and_message_text_of_my_conversations_only(client_for, alice, bob):
    by_title = conversation_with_answer(alice, title="Quarterly planning", question="q", answer="a")
    by_question = conversation_with_answer(
        alice, title="T2", question="When is the BUDGET due?", answer="a"
    )
    by_answer = conversation_with_answer(
        alice, title="T3", question="q", answer="The budget review is in May."
    )
    conversation_with_answer(alice, title="Laptops", question="When?", answer="Every four years.")
    conversation_with_answer(bob, title="Bob's budget", question="budget", answer="budget")
    hidden = conversation_with_answer(alice, title="T5", question="q", answer="budget draft")
    hidden.messages.filter(role="assistant").update(superseded=True)
    client = client_for(alice)

    def search(q):
        response = client.get("/api/conversations", {"q": q})
        return {c["id"] for c in response.json()["conversations"]}

    assert search("budget") == {str(by_question.pk), str(by_answer.pk)}
    assert search("quarterly") == {str(by_title.pk)}
    assert search("nothing like this") == set()
    assert len(search("")) == 5


# --- citations the reader may no longer see ---------------------------------------------


def test_sources_and_citations_of_a_collection_i_lost_access_to_are_shown_as_unavailable(
    client_for, alice
):
    hr = Group.objects.create(name="hr")
    alice.groups.add(hr)
    private = make_collection("HR only", readers=[hr])
    public = make_collection("Everyone", everyone=True)
    found = [
        source(1, private, "Salaries are reviewed in March."),
        source(2, public, "Payday is the 25th."),
    ]
    conversation = conversation_with_answer(
        alice,
        title="Pay",
        question="When is pay?",
        answer="Reviews in March [1]; pay on the 25th [2].",
        sources=found,
        citations=found,
    )
    client = client_for(alice)
    answer = client.get(f"/api/conversations/{conversation.pk}").json()["messages"][1]
    assert [c["number"] for c in answer["citations"]] == [1, 2]

    alice.groups.remove(hr)
    answer = client.get(f"/api/conversations/{conversation.pk}").json()["messages"][1]

    # The numbering stays (the answer's [1] still points somewhere), the passage does not.
    assert [c["number"] for c in answer["citations"]] == [1, 2]
    assert answer["citations"][0] == {"number": 1, "unavailable": True}
    assert [s["n"] for s in answer["sources"]] == [1, 2]
    assert answer["sources"][0] == {"n": 1, "unavailable": True}
    assert (
        not answer["citations"][1].get("unavailable")
        and answer["citations"][1]["text"] == "Payday is the 25th."
    )
    assert "Salaries" not in json.dumps(answer["citations"]) + json.dumps(answer["sources"])
    assert "Doc 1" not in json.dumps(answer) and "doc1.md" not in json.dumps(answer)


def test_a_citation_check_mark_on_a_passage_i_lost_access_to_is_no_longer_sent(client_for, alice):
    hr = Group.objects.create(name="hr")
    alice.groups.add(hr)
    private = make_collection("HR only", readers=[hr])
    public = make_collection("Everyone", everyone=True)
    found = [
        source(1, private, "Salaries are reviewed in March."),
        source(2, public, "Payday is the 25th."),
    ]
    conversation = conversation_with_answer(
        alice,
        title="Pay",
        question="When is pay?",
        answer="Reviews in May [1]. Pay on the 28th [2]. Both [1][2].",
        sources=found,
        citations=found,
    )
    marks = [
        {"sentence": "Reviews in May.", "numbers": [1], "reason": "not found in source 1"},
        {
            "sentence": "Pay on the 28th.",
            "numbers": [2],
            "reason": "says 28, not found in source 2",
        },
        {
            "sentence": "Both.",
            "numbers": [1, 2],
            "reason": "not found in source 1; not found in source 2",
        },
    ]
    Message.objects.filter(role="assistant").update(unsupported=marks)
    client = client_for(alice)
    answer = client.get(f"/api/conversations/{conversation.pk}").json()["messages"][1]
    assert answer["unsupported"] == marks

    # "not found in source 1" tells what the HR passage does not say: not once it is unreadable.
    alice.groups.remove(hr)
    answer = client.get(f"/api/conversations/{conversation.pk}").json()["messages"][1]
    assert answer["unsupported"] == [marks[1]]
