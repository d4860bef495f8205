"""The admin's "Erase the selected people" action (assistant/privacy/admin.py): a confirmation
page first, CSRF-protected, never yourself, never the last administrator."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from accounts.audit import Action
from accounts.models import AuditEvent, User
from assistant.models import Conversation, Message
from tests.support.knowledge import index_text, make_collection

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:accounts_user_changelist")


@pytest.fixture
def ada(make_user):
    person = make_user(email="ada@example.com", is_staff=True)
    conv = Conversation.objects.create(owner=person, title="Lisbon trip")
    Message.objects.create(conversation=conv, role="user", content="Flights to Lisbon?")
    return person


@pytest.fixture
def admin_client(admin):
    client = Client()
    client.force_login(admin)
    return client


def erase_action(*people, confirmed: bool = False, **extra) -> dict:
    data = {"action": "erase_people", ACTION_CHECKBOX_NAME: [p.pk for p in people], **extra}
    if confirmed:
        data["confirmed"] = "yes"
    return data


def test_the_action_shows_a_confirmation_page_first_and_erases_nothing(admin_client, ada):
    response = admin_client.post(CHANGELIST, erase_action(ada))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Erase people and their data" in page
    assert "ada@example.com" in page and "1 conversation(s) with 1 message(s)" in page
    assert 'name="confirmed" value="yes"' in page and "csrfmiddlewaretoken" in page
    assert User.objects.filter(pk=ada.pk).exists()
    assert Conversation.objects.filter(owner=ada).exists()


def test_confirmed_it_erases_and_their_sources_become_the_admins(admin_client, admin, ada):
    collection = make_collection("Handbook", everyone=True)
    source = index_text(collection, "travel.md", "# Travel\n\nBook early.", user=ada)

    response = admin_client.post(CHANGELIST, erase_action(ada, confirmed=True), follow=True)

    assert response.status_code == 200
    assert "Erased ada@example.com" in response.content.decode()
    assert not User.objects.filter(pk=ada.pk).exists()
    assert not Conversation.objects.exists()
    source.refresh_from_db()
    assert source.owner == admin
    event = AuditEvent.objects.get(action=Action.USER_ERASED)
    assert event.actor == admin and event.detail["counts"]["sources_kept"] == 1


def test_the_erase_action_refuses_a_forged_post_without_its_csrf_token(admin, ada):
    """Another site making a signed-in admin's browser post the confirmed action: refused."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)

    response = client.post(CHANGELIST, erase_action(ada, confirmed=True))

    assert response.status_code == 403
    assert User.objects.filter(pk=ada.pk, is_active=True).exists()
    assert Conversation.objects.filter(owner=ada).exists()


def test_an_admin_cannot_erase_themselves_from_the_admin(admin_client, admin, make_user):
    make_user(email="root2@example.com", is_staff=True, is_superuser=True)

    response = admin_client.post(CHANGELIST, erase_action(admin, confirmed=True), follow=True)

    assert "Could not erase admin@example.com. You cannot erase your own account" in (
        response.content.decode()
    )
    assert User.objects.filter(pk=admin.pk, is_active=True).exists()


def test_the_confirmation_page_says_who_will_not_be_erased(admin_client, admin):
    response = admin_client.post(CHANGELIST, erase_action(admin))
    assert "will not be erased: You cannot erase your own account" in response.content.decode()


def test_staff_without_the_delete_permission_are_not_offered_the_action(make_user, ada):
    staff = make_user(email="kim@example.com", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_user", "change_user"])
    )
    client = Client()
    client.force_login(staff)

    response = client.post(CHANGELIST, erase_action(ada, confirmed=True))

    assert User.objects.filter(pk=ada.pk, is_active=True).exists()
    assert response.status_code in (200, 302)


def test_djangos_delete_selected_is_not_offered_deleting_less_than_erasure(admin_client, ada):
    page = admin_client.get(CHANGELIST).content.decode()

    assert 'value="erase_people"' in page and 'value="delete_selected"' not in page
    response = admin_client.post(
        CHANGELIST, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [ada.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)
    assert User.objects.filter(pk=ada.pk).exists()  # no such action: nothing deleted


def test_the_delete_button_erases_the_person_with_the_audit_event(admin_client, ada):
    url = reverse("admin:accounts_user_delete", args=[ada.pk])

    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=ada.pk).exists()
    assert not Conversation.objects.filter(owner_id=ada.pk).exists()
    event = AuditEvent.objects.get(action=Action.USER_ERASED)
    assert event.detail["user_id"] == ada.pk


def test_the_delete_button_refuses_the_last_administrator(make_user, admin):
    other = make_user(email="staff@example.com", is_staff=True)
    other.user_permissions.add(Permission.objects.get(codename="delete_user"))
    client = Client()
    client.force_login(other)

    response = client.post(reverse("admin:accounts_user_delete", args=[admin.pk]), {"post": "yes"})

    assert response.status_code == 403
    assert User.objects.filter(pk=admin.pk, is_active=True).exists()
    assert not AuditEvent.objects.filter(action=Action.USER_ERASED).exists()
