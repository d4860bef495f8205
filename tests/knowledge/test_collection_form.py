"""The new-collection form: a default that works when no group exists yet, and where groups come
from when one is needed."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, Permission

from knowledge.models import Collection

pytestmark = pytest.mark.django_db


def checked_visibility(page: str) -> str:
    match = re.search(r'<input type="radio" name="visibility" value="(\w+)"[^>]*checked', page)
    assert match, "no visibility is chosen"
    return match.group(1)


def test_with_no_groups_a_new_collection_defaults_to_everyone(client, make_user):
    client.force_login(make_user(is_staff=True))
    page = client.get("/knowledge/").content.decode()
    assert checked_visibility(page) == Collection.Visibility.EVERYONE
    assert "There are no groups yet" in page


def test_with_groups_a_new_collection_defaults_to_the_chosen_groups(client, make_user):
    Group.objects.create(name="Engineering")
    client.force_login(make_user(is_staff=True))
    page = client.get("/knowledge/").content.decode()
    assert checked_visibility(page) == Collection.Visibility.GROUPS
    assert "There are no groups yet" not in page


def test_the_form_says_groups_come_from_sso_or_the_admin(client, make_user):
    client.force_login(make_user(is_staff=True))
    page = client.get("/knowledge/").content.decode()
    assert "single sign-on" in page and "SAML" in page
    assert "made in the admin by an administrator" in page
    assert 'href="/admin/auth/group/"' not in page  # this staff member may not add groups


def test_someone_who_may_add_groups_gets_a_link_to_the_admins_groups(client, make_user):
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="add_group"))
    client.force_login(staff)
    page = client.get("/knowledge/").content.decode()
    assert '<a href="/admin/auth/group/">manage groups</a>' in page


def test_a_refused_form_keeps_the_explanation(client, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    response = client.post("/knowledge/collections/new", {"name": "", "visibility": "everyone"})
    assert response.status_code == 400
    assert 'href="/admin/auth/group/"' in response.content.decode()
