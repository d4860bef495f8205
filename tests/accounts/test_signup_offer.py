"""Sign-up is offered only while it is open (AccountAdapter.is_open_for_signup): with it off,
no page a person meets, signed in or not, and no email links to the "closed" page."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from django.core import mail
from django.test import override_settings

pytestmark = pytest.mark.django_db

SIGNUP = "/accounts/signup/"
HREF = re.compile(r"""href=["']([^"']+)["']""")
# Pages a person meets before and after signing in; links found on them are followed too.
ANONYMOUS_START = ["/accounts/login/", "/accounts/password/reset/", SIGNUP]
SIGNED_IN_START = ["/", "/knowledge/", "/accounts/me/", "/admin/"]
# Following these would end the session or change something: a crawl only reads.
NOT_FOLLOWED = ("/accounts/logout/", "/admin/logout/")


def crawl(client, start: list[str], *, limit: int = 60) -> dict[str, str]:
    """Every same-site page reachable from ``start`` by links (up to ``limit``): path -> HTML."""
    seen: dict[str, str] = {}
    queue = list(start)
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen or path.startswith(NOT_FOLLOWED):
            continue
        response = client.get(path, follow=True)
        if "text/html" not in response.get("Content-Type", ""):
            # A download (a CSV, the streamed data export): no page, no links. Not closed here:
            # closing sends request_finished, which would close the test's connection.
            seen[path] = ""
            continue
        body = response.content.decode(errors="replace")
        seen[path] = body
        for href in HREF.findall(body):
            target = urlsplit(urljoin(path, href))
            if target.netloc or target.scheme not in ("", "http"):
                continue  # another site, mailto:, javascript:
            if target.path.startswith("/static/"):
                continue
            queue.append(target.path + (f"?{target.query}" if target.query else ""))
    return seen


def test_the_sign_in_page_offers_no_account_creation_while_sign_up_is_closed(client):
    html = client.get("/accounts/login/").content.decode()

    assert "Create one" not in html
    assert SIGNUP not in html
    assert "Ask your administrator for one." in html


@override_settings(ACCOUNT_ALLOW_SIGNUPS=True)
def test_the_sign_in_page_offers_account_creation_while_sign_up_is_open(client):
    html = client.get("/accounts/login/").content.decode()

    assert "Create one" in html
    assert f'href="{SIGNUP}"' in html
    assert client.get(SIGNUP).status_code == 200


def test_no_page_anyone_meets_links_to_the_closed_sign_up_page(client, admin):
    anonymous = crawl(client, ANONYMOUS_START)
    client.force_login(admin)  # a superuser sees the most: the admin and every page's links
    signed_in = crawl(client, SIGNED_IN_START)

    pages = {**anonymous, **{f"signed in: {p}": html for p, html in signed_in.items()}}
    assert len(pages) > 10, "the crawl should reach the site's pages"
    linking = [page for page, html in pages.items() if SIGNUP in HREF.findall(html)]
    assert linking == []


def test_the_closed_sign_up_page_says_who_creates_accounts_and_leads_back_to_sign_in(client):
    html = client.get(SIGNUP).content.decode()

    assert "Accounts are created by your administrator" in html
    assert 'href="/accounts/login/"' in html
    assert "Sign Up Closed" not in html


def test_a_password_reset_for_an_unknown_address_does_not_invite_a_closed_sign_up(client):
    client.post("/accounts/password/reset/", {"email": "nobody@example.com"})

    (message,) = mail.outbox
    assert SIGNUP not in message.body
    assert "ask your administrator" in message.body


@override_settings(ACCOUNT_ALLOW_SIGNUPS=True)
def test_a_password_reset_for_an_unknown_address_invites_sign_up_while_it_is_open(client):
    client.post("/accounts/password/reset/", {"email": "nobody@example.com"})

    (message,) = mail.outbox
    assert f"http://testserver{SIGNUP}" in message.body
