"""Accounts made and found for other doors (Slack): the rules live in accounts, not the door."""

import pytest

from accounts.selectors import active_account_for_email
from accounts.services import provisional_account_create

pytestmark = pytest.mark.django_db


def test_a_provisional_account_has_no_password_and_no_group():
    user = provisional_account_create(email="slack+t1-u1@slack.invalid", full_name="Sam")
    assert user is not None and user.email == "slack+t1-u1@slack.invalid"
    assert not user.has_usable_password()
    assert not user.groups.exists() and not user.is_staff and not user.is_superuser


def test_a_provisional_account_never_attaches_to_an_address_someone_already_holds(make_user):
    holder = make_user(email="slack+t1-u1@slack.invalid", is_staff=True)
    assert provisional_account_create(email="SLACK+T1-U1@slack.invalid") is None
    holder.refresh_from_db()
    assert holder.is_staff and holder.has_usable_password()


def test_an_account_is_found_by_email_in_any_case_but_never_an_inactive_or_stand_in_one(
    make_user,
):
    ada = make_user(email="ada@example.com")
    make_user(email="gone@example.com", is_active=False)
    make_user(email="slack+t1-u9@slack.invalid")
    assert active_account_for_email("ADA@example.com") == ada
    assert active_account_for_email("gone@example.com") is None
    assert active_account_for_email("nobody@example.com") is None
    assert (
        active_account_for_email("slack+t1-u9@slack.invalid", excluding_domain="slack.invalid")
        is None
    )
