"""SAML 2.0 sign-in end to end: a real Chromium, a real Daphne, a real SAML identity provider.

The identity provider is pysaml2's (tests/support/saml_idp.py) on 127.0.0.1, addressed as
``localhost`` so that its POST to our ACS is cross-site, as in production. It signs with a
key made for this run and publishes it in its metadata, which the app reads from
SAML_IDP_METADATA_URL; the app's own SP metadata is registered at the IdP the way an
administrator would upload it. One IdP and one Daphne serve the module; every sign-in starts
from a fresh browser context.
"""

from __future__ import annotations

import base64
import re
import uuid
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from accounts.models import User
from knowledge.selectors import readable_collection_ids
from tests.support import processes
from tests.support.knowledge import make_collection
from tests.support.saml_idp import SAMLTestIdP

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAML_BASE = "/accounts/saml/saml"
ACS_PATH = SAML_BASE + "/acs/"
FINISH_PATH = SAML_BASE + "/acs/finish/"
FAILED = "Sign-in could not be completed"


def person(email: str, *, name: str = "", groups: list[str] | None = None) -> dict:
    """One person at the IdP, as pysaml2 attributes (sent as URN-named SAML attributes)."""
    attributes = {"mail": [email], "displayName": [name or email.split("@")[0].title()]}
    if groups is not None:
        attributes["groups"] = groups
    return attributes


def app_env(idp: SAMLTestIdP, **idp_env: str) -> dict[str, str]:
    return {
        **idp_env,
        "SAML_PROVIDER_NAME": "Test SAML IdP",
        "SSO_ALLOWED_DOMAINS": "example.com",
        "SSO_STAFF_GROUPS": "knowledge-admins",
        "SSO_ADMIN_GROUPS": "it-admins",
        # SAML has no "verified" flag: signing into an existing account by its address needs
        # the operator's trust in this IdP (the linking test below); off by default.
        "SAML_TRUST_EMAIL": "1",
        "ACCOUNT_LOCAL_LOGIN": "0",
        # allauth caches the IdP's metadata; this run's keys must not meet an older run's.
        "CACHE_PREFIX": f"saml-test-{uuid.uuid4().hex}",
    }


def register_app_at(idp: SAMLTestIdP, base: str, *, name: str) -> str:
    """Reads the app's SP metadata and registers it at the IdP; returns the metadata."""
    response = httpx.get(base + SAML_BASE + "/metadata/", timeout=10)
    assert response.status_code == 200, response.text
    idp.register_sp(response.text, name=name)
    return response.text


@pytest.fixture(scope="module")
def idp():
    provider = SAMLTestIdP()
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def app_url(django_db_setup, django_db_blocker, idp, _allow_orm_next_to_playwright):
    """Daphne with SAML configured as in production (local sign-in off), registered at the IdP."""
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne(**app_env(idp, **idp.django_env()))
    try:
        base = f"http://127.0.0.1:{port}"
        register_app_at(idp, base, name="main")
        yield base
    finally:
        with django_db_blocker.unblock():
            processes.stop_and_discard_late_writes(proc)


@pytest.fixture(autouse=True)
def _signing_back_to_normal(idp):
    idp.set_signing("assertion")
    yield
    idp.set_signing("assertion")


@pytest.fixture
def new_page(browser):
    """Opens a page in a fresh context (no cookies at the app or at the IdP)."""
    contexts = []

    def open_page():
        context = browser.new_context()
        context.set_default_timeout(10_000)
        context.route(
            re.compile(r"^https?://(?!(127\.0\.0\.1|localhost)[:/]).*"),
            lambda route: route.abort(),
        )
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def start_sign_in(page, app_url: str, login: str) -> None:
    """From the app's sign-in page through the IdP's form; the IdP then posts to our ACS."""
    page.goto(app_url + "/accounts/login/")
    page.click("button.sso-button")
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password works here")
    page.click("button[type=submit]")


def sign_in(page, app_url: str, login: str) -> None:
    start_sign_in(page, app_url, login)
    page.wait_for_url(app_url + "/", wait_until="commit")


def expect_refused_and_signed_out(page, app_url: str) -> None:
    expect(page.locator("h1")).to_have_text(FAILED)
    assert page.goto(app_url + "/").url.startswith(app_url + "/accounts/login/")


def user_groups(user: User) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


# --- the service provider as the IdP sees it ----------------------------------------------


def test_the_sp_metadata_names_our_acs_and_asks_for_signed_assertions(app_url):
    metadata = httpx.get(app_url + SAML_BASE + "/metadata/", timeout=10).text
    assert f'entityID="{app_url}{SAML_BASE}/metadata/"' in metadata
    assert f'Location="{app_url}{ACS_PATH}"' in metadata
    assert 'WantAssertionsSigned="true"' in metadata


def test_the_sign_in_page_shows_the_saml_button_only(app_url, new_page):
    page = new_page()
    page.goto(app_url + "/accounts/login/")
    expect(page.locator("button.sso-button")).to_have_text("Sign in with Test SAML IdP")
    expect(page.locator("input[name=password]")).to_have_count(0)


# --- provisioning and group sync ---------------------------------------------------------


@pytest.mark.parametrize("signing", ["assertion", "both"])
def test_first_sign_in_creates_the_user_with_the_groups_of_the_attribute(
    app_url, idp, new_page, signing
):
    idp.set_signing(signing)
    idp.set_accounts(
        {"ada": person("ada@example.com", name="Ada Lovelace", groups=["engineering", "handbook"])}
    )
    page = new_page()
    acs_posts: list[str] = []
    page.on("request", lambda r: r.url.endswith(ACS_PATH) and acs_posts.append(r.method))
    sign_in(page, app_url, "ada")

    assert acs_posts == ["POST"]
    ada = User.objects.get(email="ada@example.com")
    assert ada.full_name == "Ada Lovelace"
    assert user_groups(ada) == ["engineering", "handbook"]
    assert not ada.has_usable_password()
    account = SocialAccount.objects.get(user=ada)
    assert (account.provider, account.uid) == ("saml", "ada")
    assert account.extra_data["urn:oid:0.9.2342.19200300.100.1.3"] == ["ada@example.com"]
    assert (ada.is_staff, ada.is_superuser) == (False, False)


def test_signing_in_again_with_changed_groups_changes_what_retrieval_may_read(
    app_url, idp, new_page
):
    engineering, finance = (
        Group.objects.create(name="engineering"),
        Group.objects.create(name="finance"),
    )
    eng_docs = make_collection("Engineering docs", readers=[engineering])
    finance_docs = make_collection("Finance docs", readers=[finance])
    everyone = make_collection("Handbook", everyone=True)

    idp.set_accounts({"ada": person("ada@example.com", groups=["engineering"])})
    sign_in(new_page(), app_url, "ada")
    ada = User.objects.get(email="ada@example.com")
    assert set(readable_collection_ids(ada)) == {eng_docs.pk, everyone.pk}

    idp.set_accounts({"ada": person("ada@example.com", groups=["finance"])})
    sign_in(new_page(), app_url, "ada")
    assert user_groups(ada) == ["finance"]
    assert set(readable_collection_ids(ada)) == {finance_docs.pk, everyone.pk}

    # No groups attribute at all: no groups.
    idp.set_accounts({"ada": person("ada@example.com")})
    sign_in(new_page(), app_url, "ada")
    assert user_groups(ada) == []
    assert SocialAccount.objects.filter(user=ada).count() == 1


def test_staff_and_admin_groups_grant_and_revoke_the_flags(app_url, idp, new_page):
    idp.set_accounts({"root": person("root@example.com", groups=["it-admins"])})
    sign_in(new_page(), app_url, "root")
    root = User.objects.get(email="root@example.com")
    assert (root.is_staff, root.is_superuser) == (True, True)

    idp.set_accounts({"root": person("root@example.com", groups=["knowledge-admins"])})
    page = new_page()
    sign_in(page, app_url, "root")
    root.refresh_from_db()
    assert (root.is_staff, root.is_superuser) == (True, False)
    assert page.goto(app_url + "/admin/").status == 200
    assert "/admin/login/" not in page.url

    idp.set_accounts({"root": person("root@example.com", groups=["engineering"])})
    page = new_page()
    sign_in(page, app_url, "root")
    root.refresh_from_db()
    assert (root.is_staff, root.is_superuser) == (False, False)
    response = page.goto(app_url + "/admin/")
    assert "/admin/login/" in page.url or response.status == 403


def test_an_existing_local_account_with_the_same_email_is_linked_not_duplicated(
    app_url, idp, new_page, make_user
):
    grace = make_user(email="grace@example.com", password="a local password 42")
    idp.set_accounts(
        {"grace": person("Grace@Example.com", name="Grace Hopper", groups=["engineering"])}
    )
    sign_in(new_page(), app_url, "grace")

    assert User.objects.filter(email__iexact="grace@example.com").count() == 1
    grace.refresh_from_db()
    assert SocialAccount.objects.get(provider="saml", uid="grace").user_id == grace.pk
    assert grace.full_name == "Grace Hopper"
    assert user_groups(grace) == ["engineering"]


# --- refusals ----------------------------------------------------------------------------


def test_an_email_outside_the_allowed_domains_is_refused_with_a_clear_page(app_url, idp, new_page):
    idp.set_accounts({"mallory": person("mallory@evil.test", groups=["it-admins"])})
    page = new_page()
    statuses: list[int] = []
    page.on("response", lambda r: r.url.endswith(FINISH_PATH) and statuses.append(r.status))
    start_sign_in(page, app_url, "mallory")
    page.wait_for_selector(".sso-refused")
    assert statuses == [403]
    expect(page.locator("h1")).to_have_text("You cannot sign in with this account")
    expect(page.locator(".sso-refused-message")).to_contain_text("only addresses at example.com")
    assert page.locator(".sso-refused").get_attribute("data-reason") == "domain"

    assert not User.objects.filter(email="mallory@evil.test").exists()
    assert not SocialAccount.objects.exists()
    assert page.goto(app_url + "/").url.startswith(app_url + "/accounts/login/")


def test_an_assertion_tampered_with_on_its_way_is_refused(app_url, idp, new_page):
    idp.set_accounts({"ada": person("ada@example.com", groups=["engineering"])})
    page = new_page()
    tampered: list[bool] = []

    def promote_to_admin(route):
        # The browser carries the response: its owner can edit it before it reaches us.
        form = {k: v[0] for k, v in parse_qs(route.request.post_data).items()}
        xml = base64.b64decode(form["SAMLResponse"])
        assert b">engineering<" in xml
        form["SAMLResponse"] = base64.b64encode(
            xml.replace(b">engineering<", b">it-admins<")
        ).decode()
        tampered.append(True)
        route.continue_(post_data=urlencode(form))

    page.route(app_url + ACS_PATH, promote_to_admin)
    start_sign_in(page, app_url, "ada")
    expect_refused_and_signed_out(page, app_url)
    assert tampered == [True]
    assert not User.objects.filter(email="ada@example.com").exists()
    assert not Group.objects.filter(name="it-admins").exists()


@pytest.mark.parametrize(
    "signing",
    [
        pytest.param("none", id="nothing-signed"),
        pytest.param("response", id="signed-response-unsigned-assertion"),
        pytest.param("foreign", id="signed-with-a-key-not-in-the-metadata"),
    ],
)
def test_a_response_without_a_trusted_assertion_signature_is_refused(
    app_url, idp, new_page, signing
):
    idp.set_signing(signing)
    idp.set_accounts({"ada": person("ada@example.com", groups=["it-admins"])})
    page = new_page()
    start_sign_in(page, app_url, "ada")
    expect_refused_and_signed_out(page, app_url)
    assert not User.objects.filter(email="ada@example.com").exists()
    assert not SocialAccount.objects.exists()


def test_a_replayed_response_is_refused(app_url, idp, new_page):
    idp.set_accounts({"ada": person("ada@example.com", groups=["engineering"])})
    page = new_page()
    posted: list[str] = []
    page.on("request", lambda r: r.url.endswith(ACS_PATH) and posted.append(r.post_data))
    sign_in(page, app_url, "ada")
    (captured,) = posted
    form = {k: v[0] for k, v in parse_qs(captured).items()}
    page.goto(app_url + "/accounts/logout/")
    page.click("main form button[type=submit]")
    page.wait_for_url(app_url + "/accounts/login/")

    # The same signed response again, in the same browser (its request was answered), and
    # in another browser, which never asked for it: no sign-in state matches its
    # InResponseTo, and allauth answers with a plain 403.
    other = new_page()
    for browser_page in (page, other):
        replay = browser_page.context.request.post(app_url + ACS_PATH, form=form)
        assert replay.url.endswith(FINISH_PATH)
        assert replay.status == 403
    for browser_page in (page, other):
        assert browser_page.goto(app_url + "/").url.startswith(app_url + "/accounts/login/")


# --- the IdP given by hand instead of by metadata URL ------------------------------------


def test_the_idp_can_be_configured_without_its_metadata_url(
    django_db_blocker, idp, new_page, app_url
):
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne(**app_env(idp, **idp.django_env_without_metadata()))
    try:
        base = f"http://127.0.0.1:{port}"
        register_app_at(idp, base, name="by-hand")
        idp.set_accounts({"ada": person("ada@example.com", groups=["engineering"])})
        sign_in(new_page(), base, "ada")
        assert user_groups(User.objects.get(email="ada@example.com")) == ["engineering"]

        idp.set_signing("foreign")
        page = new_page()
        start_sign_in(page, base, "ada")
        expect_refused_and_signed_out(page, base)
    finally:
        proc.stop()
