"""A person downloads their own data from the account page in a real browser, served by a real
Daphne (the export is an async stream): the file is their JSON, with their conversation and
none of a colleague's."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from assistant.models import Conversation, Message
from tests.support.browser import log_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_a_person_downloads_their_own_data_from_the_account_page(
    chat_server, page, reader, make_user, screenshot
):
    mine = Conversation.objects.create(owner=reader, title="Lisbon trip")
    Message.objects.create(conversation=mine, role="user", content="Flights to Lisbon?")
    colleague = make_user(email="bob@example.com")
    theirs = Conversation.objects.create(owner=colleague, title="Bob's salary")
    Message.objects.create(conversation=theirs, role="user", content="What is my raise?")
    log_in(page, chat_server, reader.email)

    page.goto(chat_server + "/accounts/me/")
    expect(page.get_by_role("heading", name="Your data")).to_be_visible()
    screenshot(page, "account-your-data", full_page=True)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download your data (JSON)").click()
    download = download_info.value

    assert download.suggested_filename.startswith("assistant-my-data-")
    data = json.loads(download.path().read_text(encoding="utf-8"))
    assert data["account"]["email"] == reader.email
    assert [c["title"] for c in data["conversations"]] == ["Lisbon trip"]
    assert "Bob" not in json.dumps(data) and "raise" not in json.dumps(data)


def test_an_admin_erases_a_person_after_the_confirmation_page(
    chat_server, page, admin, reader, screenshot
):
    """The admin's action in Chromium: the confirmation page lists what goes, its form (with
    the CSRF token) erases only when sent."""
    Conversation.objects.create(owner=reader, title="Lisbon trip")
    log_in(page, chat_server, admin.email)
    page.goto(chat_server + "/admin/accounts/user/")
    page.locator("#result_list tr", has_text=reader.email).locator("input.action-select").check()
    page.select_option("select[name=action]", "erase_people")
    page.get_by_role("button", name="Go").click()

    expect(page.locator("#erase-people")).to_contain_text(reader.email)
    expect(page.locator("#erase-people")).to_contain_text("1 conversation(s) with 0 message(s)")
    screenshot(page, "admin-erase-confirmation", full_page=True)
    assert Conversation.objects.filter(owner=reader).exists()

    page.get_by_role("button", name="Yes, erase them").click()

    expect(page.locator(".messagelist")).to_contain_text(f"Erased {reader.email}")
    assert not Conversation.objects.exists()
    assert not type(reader).objects.filter(pk=reader.pk).exists()
