"""Single sign-on end to end: a real Chromium, a real Daphne, a real OpenID Connect provider.

The provider is npm ``oidc-provider`` (OpenID Certified) on 127.0.0.1 with one client; the
people it knows and their claims live in a JSON file the tests rewrite between sign-ins.
One provider and one Daphne serve the whole module; each test uses fresh browser contexts,
so every sign-in starts from nothing at both ends.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from accounts.models import User
from knowledge.selectors import readable_collection_ids
from tests.support import processes
from tests.support.knowledge import make_collection
from tests.support.oidc_provider import OIDCTestProvider

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CALLBACK_PATH = "/accounts/oidc/sso/login/callback/"


def person(email: str, *, name: str = "", groups: list[str] | None = None, **claims) -> dict:
    return {
        "email": email,
        "email_verified": True,
        "name": name or email.split("@")[0].title(),
        "preferred_username": email.split("@")[0],
        **({"groups": groups} if groups is not None else {}),
        **claims,
    }


@pytest.fixture(scope="module")
def idp():
    provider = OIDCTestProvider()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def app_url(django_db_setup, django_db_blocker, idp, _allow_orm_next_to_playwright):
    """Daphne with SSO configured as in production (local sign-in off), then the provider
    started with Daphne's callback URL registered."""
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne(
            **idp.django_env(
                OIDC_PROVIDER_NAME="Test IdP",
                OIDC_SCOPES="openid profile email groups",
                SSO_ALLOWED_DOMAINS="example.com",
                SSO_STAFF_GROUPS="knowledge-admins",
                SSO_ADMIN_GROUPS="it-admins",
                ACCOUNT_LOCAL_LOGIN="0",
            )
        )
    base = f"http://127.0.0.1:{port}"
    idp.start(
        redirect_uris=[base + CALLBACK_PATH], post_logout_redirect_uris=[base + "/accounts/login/"]
    )
    yield base
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(proc)


@pytest.fixture
def new_page(browser):
    """Opens a page in a fresh context (no cookies at the app or at the provider)."""
    contexts = []

    def open_page():
        context = browser.new_context()
        context.set_default_timeout(10_000)
        # The provider's stock pages link web fonts; nothing may leave 127.0.0.1.
        context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]).*"), lambda route: route.abort())
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def start_sign_in(page, app_url: str, login: str) -> None:
    """From the app's sign-in page through the provider's login and consent pages."""
    page.goto(app_url + "/accounts/login/")
    page.click("button.sso-button")
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password works here")
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.startswith(app_url) or "/interaction/" in url)
    if "/interaction/" in page.url:  # consent
        page.click("button[type=submit]")


def sign_in(page, app_url: str, login: str) -> None:
    start_sign_in(page, app_url, login)
    # Signed in once the app answers the redirect home; the chat page's assets do not matter.
    page.wait_for_url(app_url + "/", wait_until="commit")


def user_groups(user: User) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


# --- provisioning and group sync ---------------------------------------------------------


def test_first_sign_in_creates_the_user_with_the_groups_of_the_claim(app_url, idp, new_page):
    idp.set_accounts(
        {"ada": person("ada@example.com", name="Ada Lovelace", groups=["engineering", "handbook"])}
    )
    sign_in(new_page(), app_url, "ada")

    ada = User.objects.get(email="ada@example.com")
    assert ada.full_name == "Ada Lovelace"
    assert user_groups(ada) == ["engineering", "handbook"]
    assert not ada.has_usable_password()
    assert SocialAccount.objects.get(user=ada).provider == "sso"
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

    # Moved from engineering to finance at the identity provider: effective at next sign-in.
    idp.set_accounts({"ada": person("ada@example.com", groups=["finance"])})
    sign_in(new_page(), app_url, "ada")
    ada = User.objects.get(email="ada@example.com")
    assert user_groups(ada) == ["finance"]
    assert set(readable_collection_ids(ada)) == {finance_docs.pk, everyone.pk}

    # Removed from every group: the claim may even be missing altogether.
    idp.set_accounts({"ada": person("ada@example.com")})
    sign_in(new_page(), app_url, "ada")
    ada = User.objects.get(email="ada@example.com")
    assert user_groups(ada) == []
    assert set(readable_collection_ids(ada)) == {everyone.pk}


def test_groups_given_by_hand_survive_sso_sign_ins(app_url, idp, new_page):
    idp.set_accounts({"ada": person("ada@example.com", groups=["engineering"])})
    sign_in(new_page(), app_url, "ada")
    ada = User.objects.get(email="ada@example.com")
    ada.groups.add(Group.objects.create(name="beta-testers"))

    idp.set_accounts({"ada": person("ada@example.com", groups=[])})
    sign_in(new_page(), app_url, "ada")
    assert user_groups(ada) == ["beta-testers"]


def test_staff_and_admin_groups_grant_and_revoke_the_flags(app_url, idp, new_page):
    idp.set_accounts({"root": person("root@example.com", groups=["it-admins"])})
    sign_in(new_page(), app_url, "root")
    root = User.objects.get(email="root@example.com")
    assert (root.is_staff, root.is_superuser) == (True, True)

    idp.set_accounts({"root": person("root@example.com", groups=["knowledge-admins"])})
    sign_in(new_page(), app_url, "root")
    root.refresh_from_db()
    assert (root.is_staff, root.is_superuser) == (True, False)

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
    assert SocialAccount.objects.get(provider="sso", uid="grace").user_id == grace.pk
    assert grace.full_name == "Grace Hopper"
    assert user_groups(grace) == ["engineering"]
    # allauth's guard: whoever set that (never verified) local password is locked out now.
    assert not grace.has_usable_password()


# --- refusals ----------------------------------------------------------------------------


def test_an_email_outside_the_allowed_domains_is_refused_with_a_clear_page(app_url, idp, new_page):
    idp.set_accounts({"mallory": person("mallory@evil.test", groups=["it-admins"])})
    page = new_page()
    statuses: list[int] = []
    page.on("response", lambda r: CALLBACK_PATH in r.url and statuses.append(r.status))
    start_sign_in(page, app_url, "mallory")
    page.wait_for_selector(".sso-refused")
    assert statuses == [403]
    expect(page.locator("h1")).to_have_text("You cannot sign in with this account")
    expect(page.locator(".sso-refused-message")).to_contain_text("only addresses at example.com")
    assert page.locator(".sso-refused").get_attribute("data-reason") == "domain"

    assert not User.objects.filter(email="mallory@evil.test").exists()
    assert not SocialAccount.objects.exists()
    assert page.goto(app_url + "/").url.startswith(app_url + "/accounts/login/")


def test_an_unverified_email_is_refused(app_url, idp, new_page):
    idp.set_accounts({"eve": person("eve@example.com", email_verified=False)})
    page = new_page()
    start_sign_in(page, app_url, "eve")
    page.wait_for_selector(".sso-refused")
    assert page.locator(".sso-refused").get_attribute("data-reason") == "email_unverified"
    assert not User.objects.filter(email="eve@example.com").exists()


def with_state(url: str, state: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = state
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_a_tampered_state_is_refused(app_url, idp, new_page):
    idp.set_accounts({"ada": person("ada@example.com", groups=["engineering"])})
    page = new_page()

    def tamper(route):
        # The app's redirect to the provider carries the state; change it on the way.
        response = route.fetch(max_redirects=0)
        location = response.headers["location"]
        state = parse_qs(urlsplit(location).query)["state"][0]
        forged = with_state(location, state[:-1] + ("A" if state[-1] != "A" else "B"))
        route.fulfill(response=response, headers={**response.headers, "location": forged})

    page.route(f"{app_url}/accounts/oidc/sso/login/*", tamper)
    start_sign_in(page, app_url, "ada")
    expect(page.locator("h1")).to_have_text("Sign-in could not be completed")
    assert page.url.startswith(app_url + CALLBACK_PATH)
    assert not User.objects.filter(email="ada@example.com").exists()
    assert page.goto(app_url + "/").url.startswith(app_url + "/accounts/login/")


def test_a_replayed_callback_is_refused(app_url, idp, new_page):
    idp.set_accounts({"ada": person("ada@example.com", groups=["engineering"])})
    page = new_page()
    callbacks: list[str] = []
    page.on("request", lambda r: CALLBACK_PATH in r.url and callbacks.append(r.url))
    sign_in(page, app_url, "ada")
    (callback,) = callbacks
    page.goto(app_url + "/accounts/logout/")
    page.click("main form button[type=submit]")  # (ends at the provider; not followed here)

    # The same answer again, in the same browser: the state was used up.
    page.goto(callback)
    expect(page.locator("h1")).to_have_text("Sign-in could not be completed")
    # ...and in another browser, which never started a sign-in.
    other = new_page()
    other.goto(callback)
    expect(other.locator("h1")).to_have_text("Sign-in could not be completed")
    for browser_page in (page, other):
        assert browser_page.goto(app_url + "/").url.startswith(app_url + "/accounts/login/")


# --- local sign-in switched off ------------------------------------------------------------


def test_local_sign_in_is_unavailable_when_switched_off(app_url, new_page, make_user):
    make_user(email="local@example.com", password="a local password 42")
    page = new_page()
    page.goto(app_url + "/accounts/login/")
    expect(page.locator("button.sso-button")).to_have_text("Sign in with Test IdP")
    expect(page.locator("input[name=password]")).to_have_count(0)

    with httpx.Client(base_url=app_url, follow_redirects=False, timeout=10) as client:
        client.get("/accounts/login/")
        token = client.cookies["csrftoken"]
        response = client.post(
            "/accounts/login/",
            data={
                "login": "local@example.com",
                "password": "a local password 42",
                "csrfmiddlewaretoken": token,
            },
        )
        assert response.status_code == 403
        assert client.get("/").status_code == 302  # still signed out
        assert client.get("/accounts/password/reset/").status_code == 404
        assert client.get("/accounts/signup/").status_code == 404


# --- logout --------------------------------------------------------------------------------


def test_logout_ends_the_session_here_and_at_the_identity_provider(app_url, idp, new_page):
    idp.set_accounts({"ada": person("ada@example.com", groups=["engineering"])})
    page = new_page()
    sign_in(page, app_url, "ada")

    page.goto(app_url + "/accounts/logout/")
    page.click("main form button[type=submit]")
    page.wait_for_url(lambda url: url.startswith(idp.issuer + "/session/end"))
    logout_url = page.url
    page.click("#logout-yes")
    page.wait_for_url(app_url + "/accounts/login/")
    assert page.goto(app_url + "/").url.startswith(app_url + "/accounts/login/")
    query = parse_qs(urlsplit(logout_url).query)
    assert query["id_token_hint"] and query["client_id"] == [idp.client_id]
    assert query["post_logout_redirect_uri"] == [app_url + "/accounts/login/"]

    # The provider forgot the session too: it asks for credentials again.
    page.goto(app_url + "/accounts/login/")
    page.click("button.sso-button")
    page.wait_for_selector("input[name=login]")
