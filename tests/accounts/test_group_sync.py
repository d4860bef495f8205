"""What an SSO sign-in writes: name, groups (only those SSO granted are removed), flags, and
the audit rows for every change of groups or flags.

The staff / admin groups and the group prefix are the provider's own (``GroupRules``, built
from its app settings at sign-in); the service reads no global list.
"""

from __future__ import annotations

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group

from accounts.models import AuditEvent
from accounts.services import user_sync_from_sso
from accounts.sso import SSO_STATE_KEY, GroupRules

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(make_user):
    return make_user(email="ada@example.com")


def social(user, provider="sso", uid="ada"):
    return SocialAccount.objects.create(user=user, provider=provider, uid=uid, extra_data={})


def sign_in(user, account, groups, name="Ada Lovelace", *, staff=(), admin=(), prefix=""):
    account.refresh_from_db()
    rules = GroupRules(
        provider_id=account.provider,
        prefix=prefix,
        staff_groups=frozenset(staff),
        admin_groups=frozenset(admin),
    )
    user_sync_from_sso(user=user, social_account=account, name=name, groups=groups, rules=rules)
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


def test_group_sync_off_leaves_groups_and_flags_alone(ada):
    ada.groups.add(Group.objects.create(name="local"))
    ada.is_staff = True
    ada.save()
    assert sign_in(ada, social(ada), None, staff=["staff"]) == ["local"]
    assert ada.is_staff is True


ROLES = {"staff": ["knowledge-admins"], "admin": ["it-admins"]}


def test_staff_and_admin_groups_grant_and_revoke_the_flags(ada):
    account = social(ada)
    sign_in(ada, account, ["knowledge-admins"], **ROLES)
    assert (ada.is_staff, ada.is_superuser) == (True, False)
    sign_in(ada, account, ["it-admins"], **ROLES)
    assert (ada.is_staff, ada.is_superuser) == (True, True)
    sign_in(ada, account, ["engineering"], **ROLES)
    assert (ada.is_staff, ada.is_superuser) == (False, False)


def test_without_staff_or_admin_groups_configured_flags_are_untouched(make_user):
    root = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    sign_in(root, social(root, uid="root"), [])
    assert (root.is_staff, root.is_superuser) == (True, True)


def test_a_locally_promoted_superuser_is_demoted_only_by_signing_in_through_sso(make_user):
    root = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    root.refresh_from_db()
    assert root.is_superuser  # nothing happens to accounts that do not sign in through SSO
    sign_in(root, social(root, uid="root"), ["engineering"], admin=["it-admins"])
    assert (root.is_staff, root.is_superuser) == (False, False)


def test_overlong_group_names_are_ignored(ada):
    assert sign_in(ada, social(ada), ["x" * 151, "ok"]) == ["ok"]


def test_a_prefix_namespaces_the_groups_a_provider_grants(ada):
    assert sign_in(ada, social(ada, "okta", "o1"), ["engineering"], prefix="okta:") == [
        "okta:engineering"
    ]


def test_rights_another_provider_granted_stay_until_that_provider_revokes_them(ada):
    okta, entra = social(ada, "okta", "o1"), social(ada, "entra", "e1")
    sign_in(ada, entra, ["assistant-admins"], admin=["assistant-admins"])
    assert ada.is_superuser
    # Okta decides flags too (its own staff group), and lists none: Entra's grant stands.
    sign_in(ada, okta, ["engineering"], staff=["helpdesk"])
    assert (ada.is_staff, ada.is_superuser) == (True, True)
    sign_in(ada, entra, [], admin=["assistant-admins"])
    assert (ada.is_staff, ada.is_superuser) == (False, False)


def audit_rows(user):
    return [
        (e.action, e.actor_id, e.detail)
        for e in AuditEvent.objects.filter(subject=user).order_by("id")
    ]


def test_group_grants_and_revocations_are_audited_with_the_provider(ada):
    ada.groups.add(Group.objects.create(name="handbook"))  # by hand: no row when SSO also lists it
    account = social(ada, "okta", "o1")
    sign_in(ada, account, ["engineering", "finance", "handbook"])
    sign_in(ada, account, ["engineering", "finance", "handbook"])  # nothing changes: no rows
    sign_in(ada, account, ["engineering"])
    assert audit_rows(ada) == [
        ("sso.groups_granted", None, {"provider": "okta", "groups": ["engineering", "finance"]}),
        ("sso.groups_revoked", None, {"provider": "okta", "groups": ["finance", "handbook"]}),
    ]


def test_flag_changes_are_audited_with_before_and_after(ada):
    account = social(ada)
    sign_in(ada, account, ["it-admins"], **ROLES)
    sign_in(ada, account, ["it-admins"], **ROLES)  # unchanged: no row
    sign_in(ada, account, ["knowledge-admins"], **ROLES)
    flag_rows = [r for r in audit_rows(ada) if r[0] == "sso.flags_changed"]
    off, staff, admin = (
        {"is_staff": False, "is_superuser": False},
        {"is_staff": True, "is_superuser": False},
        {"is_staff": True, "is_superuser": True},
    )
    assert flag_rows == [
        ("sso.flags_changed", None, {"provider": "sso", "before": off, "after": admin}),
        ("sso.flags_changed", None, {"provider": "sso", "before": admin, "after": staff}),
    ]
