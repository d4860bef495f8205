"""The audit trail: an admin's look at another person's private data is recorded, and the
record itself cannot be edited through the admin or the ORM."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.db import DatabaseError, transaction

from accounts.audit import Action, audit_record
from accounts.models import AuditEvent
from assistant.memory import services as memory_services
from assistant.models import Conversation, Message


def _grant(user, codename: str) -> None:
    user.user_permissions.add(Permission.objects.get(codename=codename))


@pytest.mark.django_db
def test_an_admin_opening_a_persons_memory_is_recorded_with_whose_it_was(client, make_user):
    root, person = make_user(is_staff=True, is_superuser=True), make_user()
    item = memory_services.remember(user=person, text="I have a medical appointment on Friday")
    _grant(root, "read_user_memory")
    client.force_login(root)

    assert client.get("/admin/assistant/memoryitem/").status_code == 200
    assert client.get(f"/admin/assistant/memoryitem/{item.pk}/change/").status_code == 200

    listed, opened = AuditEvent.objects.filter(action=Action.MEMORY_VIEWED).order_by("id")
    assert listed.actor == root and listed.detail["list"] is True
    assert opened.actor == root and opened.subject == person and opened.target_id == str(item.pk)
    assert "medical" not in opened.target_repr  # the trail outlives the person's words


@pytest.mark.django_db
def test_an_admin_deleting_a_persons_memory_item_is_recorded_with_its_text(client, make_user):
    root, person = make_user(is_staff=True, is_superuser=True), make_user()
    item = memory_services.remember(user=person, text="I prefer short answers")
    _grant(root, "read_user_memory")
    client.force_login(root)

    response = client.post(f"/admin/assistant/memoryitem/{item.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    event = AuditEvent.objects.get(action=Action.MEMORY_DELETED)
    assert event.subject == person and event.detail["text"] == "I prefer short answers"


@pytest.mark.django_db
def test_a_superuser_cannot_read_conversations_in_the_admin_without_an_explicit_grant(
    client, make_user
):
    root, person = make_user(is_staff=True, is_superuser=True), make_user()
    conversation = Conversation.objects.create(owner=person, title="My performance review")
    client.force_login(root)

    assert client.get("/admin/assistant/conversation/").status_code == 403
    assert client.get(f"/admin/assistant/conversation/{conversation.pk}/change/").status_code == 403
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_an_admin_opening_a_persons_conversation_is_recorded_and_cannot_change_it(
    client, make_user
):
    root, person = make_user(is_staff=True, is_superuser=True), make_user()
    conversation = Conversation.objects.create(owner=person, title="Parental leave")
    Message.objects.create(
        conversation=conversation, role="user", content="How long is parental leave?"
    )
    _grant(root, "read_user_conversations")
    client.force_login(root)

    page = client.get(f"/admin/assistant/conversation/{conversation.pk}/change/")
    edit = client.post(
        f"/admin/assistant/conversation/{conversation.pk}/change/", {"title": "changed"}
    )
    delete = client.post(
        f"/admin/assistant/conversation/{conversation.pk}/delete/", {"post": "yes"}
    )

    assert page.status_code == 200 and "How long is parental leave?" in page.content.decode()
    assert edit.status_code in (200, 403) and delete.status_code == 403
    conversation.refresh_from_db()
    assert conversation.title == "Parental leave"
    event = AuditEvent.objects.get(
        action=Action.CONVERSATION_VIEWED, target_id=str(conversation.pk)
    )
    assert event.actor == root and event.subject == person
    assert "Parental" not in event.target_repr  # their title is their words, not the trail's


@pytest.mark.django_db
def test_an_audit_event_cannot_be_edited_through_the_orm_or_the_admin(client, make_user):
    root = make_user(is_staff=True, is_superuser=True)
    event = audit_record(actor=root, action=Action.SOURCE_DELETED, detail={"name": "salaries.pdf"})
    client.force_login(root)

    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(detail={"name": "nothing happened"})
    assert (
        client.post(f"/admin/accounts/auditevent/{event.pk}/change/", {"action": "x"}).status_code
        == 403
    )
    assert (
        client.post(f"/admin/accounts/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert client.get(f"/admin/accounts/auditevent/{event.pk}/change/").status_code == 200

    event.refresh_from_db()
    assert event.detail == {"name": "salaries.pdf"}


@pytest.mark.django_db
def test_deleting_an_actor_keeps_their_audit_events_with_their_email(make_user):
    root = make_user(email="former-admin@example.com", is_staff=True)
    event = audit_record(actor=root, action=Action.SOURCE_DELETED)

    root.delete()

    event.refresh_from_db()
    assert event.actor is None and event.actor_email == "former-admin@example.com"


@pytest.mark.django_db
def test_staff_who_are_not_superusers_cannot_read_the_audit_trail(client, make_user):
    staff = make_user(is_staff=True)
    audit_record(actor=None, action=Action.SSO_FLAGS_CHANGED)
    client.force_login(staff)

    assert client.get("/admin/accounts/auditevent/").status_code == 403
