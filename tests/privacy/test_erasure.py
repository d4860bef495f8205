"""manage.py erase-user (assistant/privacy/erasure.py): exactly one person's data goes, their
knowledge stays unless asked, the audit trail keeps counts and no personal content."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command, get_commands

from accounts.audit import Action
from accounts.models import AccessToken, AuditEvent, SlackIdentity, User
from accounts.services import provisional_account_create
from assistant.models import (
    Citation,
    Conversation,
    Feedback,
    MemoryItem,
    MemorySettings,
    Message,
)
from assistant.privacy.erasure import email_hmac
from assistant.slack.linking import provisional_email
from assistant.slack.models import SlackEventReceipt
from knowledge.models import Source
from knowledge.tokens import token_create
from tests.support.knowledge import index_text, make_collection

pytestmark = pytest.mark.django_db


def give_a_history(person, *, word: str) -> dict:
    """One of everything erasure covers, for ``person``; the ids, to check what is left."""
    conv = Conversation.objects.create(owner=person, title=f"{word} trip")
    question = Message.objects.create(conversation=conv, role="user", content=f"{word}?")
    answer = Message.objects.create(
        conversation=conv, role="assistant", content=f"{word}!", reply_to=question
    )
    citation = Citation.objects.create(message=answer, collection_id=1, number=1, quote=word)
    feedback = Feedback.objects.create(message=answer, user=person, rating=-1, comment=word)
    memory = MemoryItem.objects.create(owner=person, text=f"likes {word}", embedding=[0.1] * 384)
    MemorySettings.objects.create(user=person, paused=True)
    token, _ = token_create(user=person, name=f"{word} script")
    slack = SlackIdentity.objects.create(team_id="T1", slack_user_id=f"U{word}", user=person)
    event = SlackEventReceipt.objects.create(
        key=f"event:{word}",
        kind="event",
        payload={"team_id": "T1", "event": {"user": f"U{word}", "text": f"{word} flights?"}},
    )
    command = SlackEventReceipt.objects.create(
        key=f"command:{word}",
        kind="command",
        payload={"team_id": "T1", "user_id": f"U{word}", "text": f"{word} hotels?"},
    )
    return {
        "conversation": conv.pk,
        "messages": {question.pk, answer.pk},
        "citation": citation.pk,
        "feedback": feedback.pk,
        "memory": memory.pk,
        "token": token.pk,
        "slack": slack.pk,
        "deliveries": {event.pk, command.pk},
    }


def what_is_left(ids: dict) -> dict:
    return {
        "conversation": Conversation.objects.filter(pk=ids["conversation"]).exists(),
        "messages": set(
            Message.objects.filter(pk__in=ids["messages"]).values_list("pk", flat=True)
        ),
        "citation": Citation.objects.filter(pk=ids["citation"]).exists(),
        "feedback": Feedback.objects.filter(pk=ids["feedback"]).exists(),
        "memory": MemoryItem.objects.filter(pk=ids["memory"]).exists(),
        "token": AccessToken.objects.filter(pk=ids["token"]).exists(),
        "slack": SlackIdentity.objects.filter(pk=ids["slack"]).exists(),
        "deliveries": set(
            SlackEventReceipt.objects.filter(pk__in=ids["deliveries"]).values_list("pk", flat=True)
        ),
    }


@pytest.fixture
def ada(make_user):
    return make_user(email="ada@example.com", is_staff=True)  # staff: may add knowledge


@pytest.fixture
def bob(make_user):
    return make_user(email="bob@example.com")


def erase(*args: str) -> str:
    out = StringIO()
    call_command("erase-user", *args, stdout=out)
    return out.getvalue()


def test_the_command_is_named_erase_user_with_a_hyphen():
    assert get_commands()["erase-user"] == "assistant.privacy"


def test_erasing_removes_exactly_that_person_and_a_second_persons_rows_are_untouched(
    ada, bob, admin
):
    ada_ids = give_a_history(ada, word="lisbon")
    bob_ids = give_a_history(bob, word="oslo")
    bob_before = what_is_left(bob_ids)
    collection = make_collection("Handbook", everyone=True)
    source = index_text(collection, "travel.md", "# Travel\n\nBook early.", user=ada)

    out = erase("ada@example.com", "--yes")

    assert not User.objects.filter(email="ada@example.com").exists()
    assert what_is_left(ada_ids) == {
        "conversation": False,
        "messages": set(),
        "citation": False,
        "feedback": False,
        "memory": False,
        "token": False,
        "slack": False,
        "deliveries": set(),
    }
    assert not MemorySettings.objects.filter(user_id=ada.pk).exists()
    assert what_is_left(bob_ids) == bob_before  # every one of bob's rows is still there
    assert all(bob_before[k] for k in bob_before)
    assert MemorySettings.objects.filter(user=bob).exists()
    source.refresh_from_db()  # the company's knowledge stays, with no owner
    assert source.owner_id is None and source.status == Source.Status.READY
    assert "Erased ada@example.com" in out
    assert "1 conversation(s) with 2 message(s)" in out and "1 access token(s)" in out
    assert "2 Slack message(s) received" in out
    assert "1 source(s) kept, with no owner" in out


def test_delete_sources_deletes_their_sources_and_uploaded_files(
    ada, bob, django_capture_on_commit_callbacks
):
    collection = make_collection("Handbook", everyone=True)
    theirs = index_text(collection, "travel.md", "# Travel\n\nBook early.", user=ada)
    staff = User.objects.create_user(email="kim@example.com", is_staff=True)
    others = index_text(collection, "meals.md", "# Meals\n\nSixty euros.", user=staff)
    storage, name = theirs.file.storage, theirs.file.name
    assert storage.exists(name)

    with django_capture_on_commit_callbacks(execute=True):
        out = erase("ada@example.com", "--yes", "--delete-sources")

    assert list(Source.objects.values_list("pk", flat=True)) == [others.pk]
    assert not storage.exists(name)
    assert others.file.storage.exists(others.file.name)
    assert "1 source(s) with their files" in out
    # Recorded as any source deletion is, so citations of it still say where it was.
    deleted = AuditEvent.objects.get(action=Action.SOURCE_DELETED)
    assert deleted.target_id == str(theirs.pk) and deleted.actor is None
    assert deleted.detail["collection"]["id"] == collection.pk


def test_reassign_to_hands_their_sources_to_a_named_colleague(ada, bob):
    collection = make_collection("Handbook", everyone=True)
    source = index_text(collection, "travel.md", "# Travel\n\nBook early.", user=ada)

    out = erase("ada@example.com", "--yes", "--reassign-to", "BOB@example.com")

    source.refresh_from_db()
    assert source.owner_id == bob.pk and source.status == Source.Status.READY
    assert "1 source(s) kept, with bob@example.com" in out
    event = AuditEvent.objects.get(action=Action.USER_ERASED)
    assert event.detail["sources_to"] == bob.pk


@pytest.mark.parametrize("heir", ["nobody@example.com", "ada@example.com", "gone@example.com"])
def test_reassign_to_a_missing_inactive_or_the_same_account_erases_nothing(ada, make_user, heir):
    make_user(email="gone@example.com", is_active=False)
    collection = make_collection("Handbook", everyone=True)
    source = index_text(collection, "travel.md", "# Travel\n\nBook early.", user=ada)

    with pytest.raises(CommandError, match="must be another active account"):
        erase("ada@example.com", "--yes", "--reassign-to", heir)

    assert User.objects.get(pk=ada.pk).is_active
    source.refresh_from_db()
    assert source.owner_id == ada.pk


def test_reassign_to_and_delete_sources_cannot_both_be_asked(ada, bob):
    with pytest.raises(CommandError):
        erase("ada@example.com", "--yes", "--delete-sources", "--reassign-to", "bob@example.com")
    assert User.objects.filter(pk=ada.pk).exists()


def test_the_slack_stand_in_account_used_before_linking_is_erased_with_the_person(ada, bob):
    """Before Ada linked her Slack identity, a public-only stand-in account asked for her; the
    link switched it off but kept what she asked then. Erasing Ada erases it too."""
    give_a_history(ada, word="lisbon")  # her identity: T1 / Ulisbon
    stand_in = provisional_account_create(email=provisional_email("T1", "Ulisbon"))
    User.objects.filter(pk=stand_in.pk).update(is_active=False)
    early = Conversation.objects.create(owner=stand_in, origin="slack", title="before linking")
    Message.objects.create(conversation=early, role="user", content="What is my salary band?")
    MemoryItem.objects.create(owner=stand_in, text="asks about pay", embedding=[0.1] * 384)
    bob_ids = give_a_history(bob, word="oslo")
    bob_before = what_is_left(bob_ids)

    out = erase("ada@example.com", "--yes")

    assert not User.objects.filter(pk__in=[ada.pk, stand_in.pk]).exists()
    assert not Conversation.objects.filter(pk=early.pk).exists()
    assert not MemoryItem.objects.filter(owner_id=stand_in.pk).exists()
    assert what_is_left(bob_ids) == bob_before
    assert "2 conversation(s) with 3 message(s)" in out and "2 memory item(s)" in out


def test_the_audit_event_keeps_counts_and_an_email_hmac_never_the_address(ada):
    give_a_history(ada, word="lisbon")
    ada_id = ada.pk

    erase("ada@example.com", "--yes")

    event = AuditEvent.objects.get(action=Action.USER_ERASED)
    assert event.detail["user_id"] == ada_id
    assert event.detail["email_hmac"] == email_hmac("Ada@Example.com")
    assert event.detail["counts"]["conversations"] == 1
    assert event.detail["counts"]["tokens"] == 1
    assert event.detail["counts"]["feedback"] == 1  # counted before it went with the answers
    assert event.actor is None and event.subject is None
    stored = f"{event.target_repr} {event.target_id} {event.detail}"
    assert "ada@" not in stored.lower() and "lisbon" not in stored


def test_the_command_asks_first_and_a_wrong_answer_erases_nothing(ada):
    ids = give_a_history(ada, word="lisbon")
    out = StringIO()

    with pytest.raises(CommandError, match="Not confirmed. Nothing was erased"):
        call_command("erase-user", "ada@example.com", stdin=StringIO("yes\n"), stdout=out)

    assert "Erasing ada@example.com deletes the account" in out.getvalue()
    assert "Type the address again to confirm" in out.getvalue()
    assert User.objects.filter(pk=ada.pk, is_active=True).exists()
    assert all(what_is_left(ids).values())


def test_an_empty_stdin_is_no_confirmation(ada):
    with pytest.raises(CommandError, match="Not confirmed"):
        call_command("erase-user", "ada@example.com", stdin=StringIO(""), stdout=StringIO())
    assert User.objects.filter(pk=ada.pk).exists()


def test_typing_the_address_again_confirms(ada):
    call_command(
        "erase-user", "ada@example.com", stdin=StringIO("ADA@example.com\n"), stdout=StringIO()
    )
    assert not User.objects.filter(pk=ada.pk).exists()


def test_erasing_a_nonexistent_email_says_so_and_changes_nothing(ada, bob):
    with pytest.raises(CommandError, match="No account has the address 'nobody@example.com'"):
        erase("nobody@example.com", "--yes")
    assert User.objects.count() == 2
    assert not AuditEvent.objects.filter(action=Action.USER_ERASED).exists()


def test_erasing_someone_twice_says_they_are_gone(ada):
    erase("ada@example.com", "--yes")
    with pytest.raises(CommandError, match="No account has the address"):
        erase("ada@example.com", "--yes")
    assert AuditEvent.objects.filter(action=Action.USER_ERASED).count() == 1


def test_erasing_the_last_superuser_is_refused(admin, bob):
    with pytest.raises(CommandError, match="last active administrator"):
        erase("admin@example.com", "--yes")
    admin.refresh_from_db()
    assert admin.is_active and admin.is_superuser


def test_a_superuser_may_be_erased_while_another_remains(admin, make_user):
    make_user(email="root2@example.com", is_staff=True, is_superuser=True)
    erase("admin@example.com", "--yes")
    assert not User.objects.filter(email="admin@example.com").exists()
