"""What an SSO sign-in writes: name, groups (only those SSO granted are removed), flags."""

from __future__ import annotations

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group

from accounts.services import user_sync_from_sso
from accounts.sso import SSO_STATE_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(make_user):
    return make_user(email="ada@example.com")


def social(user, provider="sso", uid="ada"):
    return SocialAccount.objects.create(user=user, provider=provider, uid=uid, extra_data={})


def sign_in(user, account, groups, name="Ada Lovelace"):
    account.refresh_from_db()
    user_sync_from_sso(user=user, social_account=account, name=name, groups=groups)
    user.refresh_from_db()
    return sorted(user.groups.values_list("name", flat=True))


def test_groups_are_created_and_joined_and_the_name_is_set(ada):
    assert sign_in(ada, social(ada), ["engineering", "handbook-readers"]) == [
        "engineering",
        "handbook-readers",
    ]
    assert ada.full_name == "Ada Lovelace"
    assert Group.objects.filter(name="engineering").exists()


def test_a_group_dropped_at_the_idp_is_left_at_the_next_sign_in(ada):
    account = social(ada)
    sign_in(ada, account, ["engineering", "finance"])
    assert sign_in(ada, account, ["engineering"]) == ["engineering"]
    assert Group.objects.filter(name="finance").exists()  # the group stays, the membership goes


def test_groups_given_by_hand_are_never_removed_by_sso(ada):
    ada.groups.add(Group.objects.create(name="beta-testers"))
    account = social(ada)
    sign_in(ada, account, ["engineering"])
    assert sign_in(ada, account, []) == ["beta-testers"]


def test_a_group_still_granted_by_another_provider_is_kept(ada):
    okta, entra = social(ada, "okta", "o1"), social(ada, "entra", "e1")
    sign_in(ada, okta, ["shared"])
    sign_in(ada, entra, ["shared"])
    assert sign_in(ada, okta, []) == ["shared"]
    assert sign_in(ada, entra, []) == []


def test_the_granted_groups_are_recorded_on_the_social_account(ada):
    account = social(ada)
    sign_in(ada, account, ["b", "a"])
    account.refresh_from_db()
    assert account.extra_data[SSO_STATE_KEY] == {"groups": ["b", "a"]}


def test_group_sync_off_leaves_groups_and_flags_alone(ada, settings):
    settings.SSO_STAFF_GROUPS = ["staff"]
    ada.groups.add(Group.objects.create(name="local"))
    ada.is_staff = True
    ada.save()
    assert sign_in(ada, social(ada), None) == ["local"]
    assert ada.is_staff is True


def test_staff_and_admin_groups_grant_and_revoke_the_flags(ada, settings):
    settings.SSO_STAFF_GROUPS = ["knowledge-admins"]
    settings.SSO_ADMIN_GROUPS = ["it-admins"]
    account = social(ada)
    sign_in(ada, account, ["knowledge-admins"])
    assert (ada.is_staff, ada.is_superuser) == (True, False)
    sign_in(ada, account, ["it-admins"])
    assert (ada.is_staff, ada.is_superuser) == (True, True)
    sign_in(ada, account, ["engineering"])
    assert (ada.is_staff, ada.is_superuser) == (False, False)


def test_without_staff_or_admin_groups_configured_flags_are_untouched(make_user, settings):
    settings.SSO_STAFF_GROUPS = []
    settings.SSO_ADMIN_GROUPS = []
    root = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    sign_in(root, social(root, uid="root"), [])
    assert (root.is_staff, root.is_superuser) == (True, True)


def test_a_locally_promoted_superuser_is_demoted_only_by_signing_in_through_sso(
    make_user, settings
):
    settings.SSO_ADMIN_GROUPS = ["it-admins"]
    root = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    root.refresh_from_db()
    assert root.is_superuser  # nothing happens to accounts that do not sign in through SSO
    sign_in(root, social(root, uid="root"), ["engineering"])
    assert (root.is_staff, root.is_superuser) == (False, False)


def test_overlong_group_names_are_ignored(ada):
    assert sign_in(ada, social(ada), ["x" * 151, "ok"]) == ["ok"]
