"""A passage the reader can no longer read, on the chat page: the chip keeps its number and
says "No longer available", and nothing of the passage reaches the page (the in-process rules
are in tests/security/test_stale_access.py). Real Chromium and Daphne."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from assistant.models import Citation, Conversation, Message
from tests.support import scenarios
from tests.support.browser import log_in
from tests.support.scenarios import PASSAGE_TEXT, SALARIES, SALARY_QUESTION

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_the_chat_page_shows_a_lost_passage_as_no_longer_available(make_user, chat_server, page):
    world = scenarios.StaleAccessWorld(make_user)
    conversation = Conversation.objects.create(owner=world.reader, title="Pay")
    question = Message.objects.create(
        conversation=conversation, role="user", content=SALARY_QUESTION
    )
    passage = {
        "n": 1,
        "chunk_id": None,
        "source_id": world.salaries.pk,
        "collection_id": world.pay.pk,
        "title": "Salary bands",
        "source_name": "salaries.md",
        "url": "",
        "heading": "Engineering",
        "page": None,
        "text": SALARIES,
    }
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="See the pay document [1].",
        reply_to=question,
        sources=[passage],
    )
    Citation.objects.create(
        message=answer,
        collection_id=world.pay.pk,
        source_id=world.salaries.pk,
        number=1,
        quote=SALARIES,
        document_title="Salary bands",
        source_name="salaries.md",
    )
    world.remove_group()

    log_in(page, chat_server, world.reader.email)
    page.goto(f"{chat_server}/c/{conversation.pk}")

    chip = page.locator(".message-answer .cite-chip").first
    expect(chip).to_have_text("1")  # the marker keeps its number, as a chip
    expect(chip).to_have_attribute("aria-label", "Source 1: No longer available")
    expect(page.locator(".message-answer .source-label").first).to_have_text("No longer available")
    chip.click()
    expect(page.locator("[data-panel-title]")).to_have_text("No longer available")
    expect(page.locator("[data-panel-quote]")).to_contain_text("no longer available")
    expect(page.locator("[data-panel-link]")).to_be_hidden()
    html = page.content()
    for text in PASSAGE_TEXT:
        assert text not in html
    assert page.problems == [], page.problems
