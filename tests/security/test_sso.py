"""Single sign-on under attack: linking to someone else's account, and borrowing another
provider's groups or rights.

Each sign-in runs the whole authorization-code flow against real OpenID Connect providers
(npm ``oidc-provider`` on 127.0.0.1, one per identity provider): the app's side in-process
with Django's test client (allauth's own lookup by e-mail, our adapters, the service), the
provider's side over HTTP. Nothing of ours is stubbed.
"""

from __future__ import annotations

import json

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from accounts.models import AuditEvent, User
from assistant.project.env import Env
from knowledge.selectors import readable_collection_ids
from tests.support.django_settings import django_settings
from tests.support.knowledge import make_collection
from tests.support.oidc_provider import (
    OIDCTestProvider,
    callback_url_for_test_client,
    sign_in_with_test_client,
)

pytestmark = pytest.mark.django_db

# Settings the SSO variables decide that a test may switch; the rest (apps installed, local
# sign-in, URL patterns) stays as the test settings made it.
_SWITCHED = (
    "SOCIALACCOUNT_PROVIDERS",
    "SOCIALACCOUNT_EMAIL_AUTHENTICATION",
    "SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT",
    "SOCIALACCOUNT_AUTO_SIGNUP",
    "SSO_PROVIDER_IDS",
    "SSO_ALLOWED_DOMAINS",
    "SSO_STAFF_GROUPS",
    "SSO_ADMIN_GROUPS",
)


@pytest.fixture(scope="module")
def okta():
    """Stands for any provider that sends ``email_verified`` (Okta, Google, Keycloak); the
    single-provider configuration ("sso") uses it too."""
    provider = OIDCTestProvider()
    provider.start(
        redirect_uris=[callback_url_for_test_client("sso"), callback_url_for_test_client("okta")]
    )
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def entra():
    """Stands for Entra ID: its people carry no ``email_verified`` claim."""
    provider = OIDCTestProvider()
    provider.start(redirect_uris=[callback_url_for_test_client("entra")])
    yield provider
    provider.stop()


def person(email: str, *, verified: bool | None = True, groups: list[str] | None = None) -> dict:
    claims: dict = {"email": email, "name": email.split("@")[0].title()}
    if verified is not None:
        claims["email_verified"] = verified
    if groups is not None:
        claims["groups"] = groups
    return claims


def configure(settings, environ: dict) -> None:
    """Applies the SSO settings that ``environ`` gives in production to this test."""
    computed = django_settings(Env(environ), debug=False)
    for name in _SWITCHED:
        setattr(settings, name, computed[name])


def single_provider(settings, idp: OIDCTestProvider, **extra: str) -> None:
    configure(
        settings,
        {"OIDC_SCOPES": "openid profile email groups", **idp.django_env(**extra)},
    )


def okta_and_entra(settings, okta, entra, *, okta_extra=None, entra_extra=None, **extra) -> None:
    def app(provider_id: str, idp: OIDCTestProvider, more: dict | None) -> dict:
        return {
            "id": provider_id,
            "name": provider_id.title(),
            "server_url": idp.issuer,
            "client_id": idp.client_id,
            "client_secret": idp.client_secret,
            "scopes": ["openid", "profile", "email", "groups"],
            **(more or {}),
        }

    providers = [app("okta", okta, okta_extra), app("entra", entra, entra_extra)]
    configure(settings, {"OIDC_PROVIDERS": json.dumps(providers), **extra})


def sign_in(idp: OIDCTestProvider, provider_id: str, login: str):
    """One sign-in in a fresh browser session; the callback's response."""
    return sign_in_with_test_client(Client(), idp, provider_id=provider_id, login=login)


def assert_signed_in(response) -> None:
    assert response.status_code == 302, response.content[:800]
    assert response["Location"] == "/"


def assert_refused(response, reason: str) -> None:
    assert response.status_code == 403, response.content[:800]
    assert f'data-reason="{reason}"'.encode() in response.content


def groups_of(user: User) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


# --- linking to an existing account --------------------------------------------------------


def test_an_unverified_email_cannot_sign_into_an_existing_account(settings, okta, make_user):
    single_provider(settings, okta)
    grace = make_user(email="grace@example.com", is_staff=True)
    okta.set_accounts({"mallory": person("grace@example.com", verified=None, groups=["x"])})

    response = sign_in(okta, "sso", "mallory")

    assert_refused(response, "email_taken")
    assert b"does not confirm that this address is verified" in response.content
    assert b"Ask the people who run this assistant" in response.content
    assert not SocialAccount.objects.exists()
    assert User.objects.filter(email__iexact="grace@example.com").count() == 1
    grace.refresh_from_db()
    assert grace.has_usable_password() and not grace.groups.exists()


def test_a_verified_email_signs_into_the_existing_account_and_links_it(settings, okta, make_user):
    single_provider(settings, okta)
    grace = make_user(email="grace@example.com")
    okta.set_accounts({"grace": person("Grace@Example.com", verified=True)})

    assert_signed_in(sign_in(okta, "sso", "grace"))
    assert SocialAccount.objects.get(provider="sso", uid="grace").user_id == grace.pk


def test_an_unverified_email_of_nobody_here_gets_a_new_account_of_its_own(settings, okta):
    single_provider(settings, okta)
    okta.set_accounts({"newcomer": person("newcomer@example.com", verified=None)})

    assert_signed_in(sign_in(okta, "sso", "newcomer"))
    newcomer = User.objects.get(email="newcomer@example.com")
    assert SocialAccount.objects.get(provider="sso", uid="newcomer").user_id == newcomer.pk
    # Stored as unverified: it proves nothing to a later sign-in (see the next test).
    assert not EmailAddress.objects.get(user=newcomer).verified


def test_an_account_made_from_an_unverified_email_is_not_taken_over_by_a_later_verified_one(
    settings, okta
):
    single_provider(settings, okta)
    okta.set_accounts(
        {
            "squatter": person("victim@example.com", verified=None),
            "victim": person("victim@example.com", verified=True),
        }
    )
    assert_signed_in(sign_in(okta, "sso", "squatter"))

    # The real owner of the address must not land in (and share) the squatter's account.
    assert_refused(sign_in(okta, "sso", "victim"), "email_taken")
    assert list(SocialAccount.objects.values_list("uid", flat=True)) == ["squatter"]


def test_entra_without_email_verified_links_only_when_the_operator_opts_in(
    settings, okta, entra, make_user
):
    grace = make_user(email="grace@example.com")
    entra.set_accounts({"grace": person("grace@example.com", verified=None)})
    okta_and_entra(settings, okta, entra)

    assert_refused(sign_in(entra, "entra", "grace"), "email_taken")
    assert not SocialAccount.objects.exists()

    okta_and_entra(settings, okta, entra, entra_extra={"trust_email": True})
    assert_signed_in(sign_in(entra, "entra", "grace"))
    assert SocialAccount.objects.get(provider="entra", uid="grace").user_id == grace.pk


def test_the_single_provider_opt_in_is_oidc_trust_email(settings, okta, make_user):
    grace = make_user(email="grace@example.com")
    okta.set_accounts({"grace": person("grace@example.com", verified=None)})
    single_provider(settings, okta, OIDC_TRUST_EMAIL="1")

    assert_signed_in(sign_in(okta, "sso", "grace"))
    assert SocialAccount.objects.get(provider="sso").user_id == grace.pk


def test_an_explicitly_unverified_email_is_refused_even_with_the_opt_in(settings, okta, make_user):
    make_user(email="grace@example.com")
    okta.set_accounts({"mallory": person("grace@example.com", verified=False)})
    single_provider(settings, okta, OIDC_TRUST_EMAIL="1")

    assert_refused(sign_in(okta, "sso", "mallory"), "email_unverified")
    assert not SocialAccount.objects.exists()


# --- groups and rights, per provider -------------------------------------------------------


def test_one_providers_group_claim_cannot_grant_another_providers_admin_rights(
    settings, okta, entra
):
    okta_and_entra(
        settings,
        okta,
        entra,
        SSO_ADMIN_GROUPS="entra:assistant-admins",
        SSO_STAFF_GROUPS="entra:knowledge-admins",
    )
    okta.set_accounts(
        {"ada": person("ada@example.com", groups=["assistant-admins", "knowledge-admins"])}
    )

    assert_signed_in(sign_in(okta, "okta", "ada"))
    ada = User.objects.get(email="ada@example.com")
    assert (ada.is_staff, ada.is_superuser) == (False, False)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SSO_FLAGS_CHANGED).exists()

    # The provider the operator named does grant them (and its sign-in links by the address
    # Okta verified: the same person).
    entra.set_accounts({"ada": person("ada@example.com", groups=["assistant-admins"])})
    assert_signed_in(sign_in(entra, "entra", "ada"))
    ada.refresh_from_db()
    assert (ada.is_staff, ada.is_superuser) == (True, True)
    event = AuditEvent.objects.get(action=AuditEvent.Action.SSO_FLAGS_CHANGED)
    assert (event.actor_id, event.subject_id) == (None, ada.pk)
    assert event.detail == {
        "provider": "entra",
        "before": {"is_staff": False, "is_superuser": False},
        "after": {"is_staff": True, "is_superuser": True},
    }

    # Signing in through Okta again neither keeps nor takes Entra's grant by its own claim.
    assert_signed_in(sign_in(okta, "okta", "ada"))
    ada.refresh_from_db()
    assert (ada.is_staff, ada.is_superuser) == (True, True)


def test_a_bare_admin_group_cannot_be_configured_for_several_providers(settings, okta, entra):
    with pytest.raises(ImproperlyConfigured, match="SSO_ADMIN_GROUPS"):
        okta_and_entra(settings, okta, entra, SSO_ADMIN_GROUPS="assistant-admins")


def test_a_group_name_from_provider_a_does_not_join_the_group_provider_b_grants(
    settings, okta, entra
):
    okta_and_entra(settings, okta, entra)
    # Finance is shared with the group Entra's "finance" becomes.
    finance = make_collection("Finance", readers=[Group.objects.create(name="entra:finance")])
    handbook = make_collection("Handbook", everyone=True)
    okta.set_accounts(
        {"mallory": person("mallory@example.com", groups=["finance", "entra:finance"])}
    )

    assert_signed_in(sign_in(okta, "okta", "mallory"))
    mallory = User.objects.get(email="mallory@example.com")
    assert groups_of(mallory) == ["okta:entra:finance", "okta:finance"]
    assert set(readable_collection_ids(mallory)) == {handbook.pk}

    entra.set_accounts({"bob": person("bob@example.com", groups=["finance"])})
    assert_signed_in(sign_in(entra, "entra", "bob"))
    bob = User.objects.get(email="bob@example.com")
    assert set(readable_collection_ids(bob)) == {finance.pk, handbook.pk}
    granted = AuditEvent.objects.get(action=AuditEvent.Action.SSO_GROUPS_GRANTED, subject=bob)
    assert granted.detail == {"provider": "entra", "groups": ["entra:finance"]}


def test_a_provider_the_operator_maps_to_plain_names_keeps_them(settings, okta, entra):
    okta_and_entra(settings, okta, entra, okta_extra={"group_prefix": ""})
    okta.set_accounts({"ada": person("ada@example.com", groups=["engineering"])})

    assert_signed_in(sign_in(okta, "okta", "ada"))
    assert groups_of(User.objects.get(email="ada@example.com")) == ["engineering"]


def test_a_group_dropped_at_the_provider_is_revoked_and_audited(settings, okta):
    single_provider(settings, okta)
    okta.set_accounts({"ada": person("ada@example.com", groups=["engineering", "finance"])})
    assert_signed_in(sign_in(okta, "sso", "ada"))
    okta.set_accounts({"ada": person("ada@example.com", groups=["engineering"])})
    assert_signed_in(sign_in(okta, "sso", "ada"))

    ada = User.objects.get(email="ada@example.com")
    assert groups_of(ada) == ["engineering"]  # single provider: names as sent
    assert [
        (e.action, e.detail)
        for e in AuditEvent.objects.filter(subject=ada, action__startswith="sso.").order_by("id")
    ] == [
        ("sso.groups_granted", {"provider": "sso", "groups": ["engineering", "finance"]}),
        ("sso.groups_revoked", {"provider": "sso", "groups": ["finance"]}),
    ]
