"""Personal access tokens on the account page in a real browser (issue 16): create one narrowed
to a collection, copy it with the button (shown once, with the warning), see it listed, revoke
it after saying yes to the question, and the token stops working."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import AccessToken
from accounts.tokens import TokenError
from knowledge.tokens import authenticate
from tests.support.browser import log_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_a_person_creates_copies_and_revokes_a_token(
    chat_server, context, page, reader, handbook, screenshot
):
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=chat_server)
    log_in(page, chat_server, reader.email)
    page.goto(chat_server + "/accounts/me/")
    expect(page.locator("#token-list")).to_have_text("You have no tokens yet.")

    page.fill("#token-name", "IDE agent")
    page.select_option("#token-expiry", "30")
    page.get_by_label("Handbook").check()
    page.get_by_role("button", name="Create token").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Your new token “IDE agent”")
    expect(page.locator(".token-warning")).to_contain_text("won't be shown again")
    expect(page.locator("#token-scope")).to_have_text("Handbook")
    shown = page.locator("#new-token").input_value()
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_contain_text("Copied")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == shown
    screenshot(page, "token-created")
    auth = authenticate(f"Bearer {copied}")
    assert auth.user == reader and auth.collection_ids == {handbook.pk}

    page.get_by_role("link", name="Back to your account").click()
    token = AccessToken.objects.get(owner=reader)
    row = page.locator(f'tr[data-token="{token.prefix}"]')
    expect(row).to_contain_text("IDE agent")
    expect(row).to_contain_text("Handbook")
    expect(row).to_contain_text(f"{token.prefix}…")
    expect(row).to_contain_text("In the last minute")  # used just now, by authenticate above
    assert shown not in page.content()  # listed by its prefix only, never again in full
    screenshot(page, "token-list", full_page=True)

    # Revoking asks first; saying no keeps the token.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Revoke").click()
    expect(row.get_by_role("button", name="Revoke")).to_be_visible()
    token.refresh_from_db()
    assert token.revoked_at is None

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(".messages")).to_contain_text("“IDE agent” is revoked")
    expect(page.locator(f'tr[data-token="{token.prefix}"]')).to_contain_text("Revoked")
    with pytest.raises(TokenError) as refused:
        authenticate(f"Bearer {copied}")
    assert refused.value.reason == "revoked"
    assert page.problems == []
