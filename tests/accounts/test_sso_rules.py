"""The rules one SSO sign-in must pass, on claims alone (no browser, no database)."""

from __future__ import annotations

import pytest

from accounts.sso import (
    display_name,
    email_links_existing_account,
    groups_from_claims,
    sign_in_refusal,
)

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def login(id_token: dict | None = None, userinfo: dict | None = None) -> dict:
    data = {}
    if id_token is not None:
        data["id_token"] = id_token
    if userinfo is not None:
        data["userinfo"] = userinfo
    return data


def refusal(extra_data, *, allowed=(), **app_settings):
    result = sign_in_refusal(extra_data, app_settings=app_settings, allowed_domains=list(allowed))
    return result.code if result else None


ADA = {"sub": "1", "email": "ada@example.com", "email_verified": True, "name": "Ada Lovelace"}


def test_a_verified_email_signs_in():
    assert refusal(login(ADA)) is None


@pytest.mark.parametrize("verified", [True, "true", None])
def test_email_verified_true_or_absent_is_accepted(verified):
    claims = (
        {**ADA, "email_verified": verified}
        if verified is not None
        else {"sub": "1", "email": "ada@example.com"}
    )
    assert refusal(login(claims)) is None


@pytest.mark.parametrize("verified", [False, "false", "False"])
def test_email_verified_false_is_refused(verified):
    assert refusal(login({**ADA, "email_verified": verified})) == "email_unverified"


@pytest.mark.parametrize(
    ("id_token", "userinfo", "trust_email", "links"),
    [
        ({"email_verified": True}, None, False, True),
        ({"email_verified": "true"}, None, False, True),
        ({}, None, False, False),  # Entra: no claim at all
        ({}, None, True, True),  # ...unless the operator trusts this provider's addresses
        ({"email_verified": "yes"}, None, False, False),
        ({"email_verified": 1}, None, False, False),
        ({"email_verified": True}, {"email_verified": False}, False, False),
        ({"email_verified": False}, None, True, False),  # an explicit no beats the opt-in
        ({"email_verified": "false"}, None, True, False),
    ],
)
def test_only_an_asserted_or_trusted_email_may_sign_into_an_existing_account(
    id_token, userinfo, trust_email, links
):
    base = {"sub": "1", "email": "ada@example.com"}
    extra_data = login({**base, **id_token}, {**base, **userinfo} if userinfo else None)
    assert email_links_existing_account(extra_data, {"trust_email": trust_email}) is links


def test_a_false_in_either_claim_set_refuses_the_sign_in():
    id_token_says_no = login({**ADA, "email_verified": False}, {**ADA, "email_verified": True})
    assert refusal(id_token_says_no) == "email_unverified"


def test_userinfo_saying_unverified_wins_over_the_id_token():
    assert (
        refusal(login(ADA, {"sub": "1", "email": "ada@example.com", "email_verified": False}))
        == "email_unverified"
    )


@pytest.mark.parametrize("email", [None, "", "not-an-address"])
def test_a_missing_email_is_refused(email):
    claims = {"sub": "1"} if email is None else {"sub": "1", "email": email}
    assert refusal(login(claims)) == "email_missing"


def test_allowed_domains_are_matched_exactly_and_case_insensitively():
    assert refusal(login({**ADA, "email": "Ada@EXAMPLE.com"}), allowed=["example.com"]) is None
    assert (
        refusal(login({**ADA, "email": "ada@evil.example.net"}), allowed=["example.com"])
        == "domain"
    )
    assert (
        refusal(login({**ADA, "email": "ada@sub.example.com"}), allowed=["example.com"]) == "domain"
    )
    assert (
        refusal(login({**ADA, "email": "ada@example.com.evil.test"}), allowed=["example.com"])
        == "domain"
    )


def test_a_providers_own_allowed_domains_apply_as_well():
    assert refusal(login(ADA), allowed_domains=["other.example"]) == "domain"
    assert refusal(login(ADA), allowed=["example.com"], allowed_domains=["example.com"]) is None


def test_entra_tenant_must_match_the_tid_claim():
    assert refusal(login({**ADA, "tid": TENANT}), tenant_id=TENANT) is None
    assert refusal(login({**ADA, "tid": TENANT.upper()}), tenant_id=TENANT) is None
    assert (
        refusal(login({**ADA, "tid": "00000000-0000-0000-0000-000000000000"}), tenant_id=TENANT)
        == "tenant"
    )
    assert refusal(login(ADA), tenant_id=TENANT) == "tenant"


def test_google_hosted_domain_must_match_the_hd_claim_in_every_source():
    assert refusal(login({**ADA, "hd": "example.com"}), hosted_domain="example.com") is None
    assert refusal(login(ADA), hosted_domain="example.com") == "hosted_domain"  # consumer account
    assert (
        refusal(login({**ADA, "hd": "other.com"}), hosted_domain="example.com") == "hosted_domain"
    )
    mixed = login({**ADA, "hd": "example.com"}, {**ADA, "hd": "other.com"})
    assert refusal(mixed, hosted_domain="example.com") == "hosted_domain"


def test_an_entra_groups_overage_is_refused_rather_than_guessed():
    overage = {
        **ADA,
        "_claim_names": {"groups": "src1"},
        "_claim_sources": {"src1": {"endpoint": "https://graph"}},
    }
    assert refusal(login(overage), groups_claim="groups") == "groups_overage"
    assert refusal(login(overage), groups_claim="") is None


def test_groups_come_from_userinfo_or_the_id_token_and_are_cleaned():
    assert groups_from_claims(login({**ADA, "groups": ["b", "a", "a", " ", 3]}), "groups") == [
        "a",
        "b",
    ]
    assert groups_from_claims(login(ADA, {"groups": ["x"]}), "groups") == ["x"]
    assert groups_from_claims(login({**ADA, "roles": "Knowledge.Admin"}), "roles") == [
        "Knowledge.Admin"
    ]


def test_a_missing_groups_claim_means_no_groups_and_an_empty_claim_name_means_no_sync():
    assert groups_from_claims(login(ADA), "groups") == []
    assert groups_from_claims(login({**ADA, "groups": ["a"]}), "") is None


def test_display_name_falls_back_to_given_and_family_names():
    assert display_name(login(ADA)) == "Ada Lovelace"
    assert (
        display_name(login({"sub": "1", "given_name": "Grace", "family_name": "Hopper"}))
        == "Grace Hopper"
    )
    assert display_name(login({"sub": "1"})) == ""
