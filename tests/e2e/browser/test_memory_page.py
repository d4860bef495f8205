"""The memory page in a real browser (issues 14 and 16): an edit and a delete each say what they
did, a delete asks first (a page of its own: the strict CSP allows no inline script), and each
item says where it came from, with a link to the message in its conversation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from assistant.memory import services as memory_services
from assistant.models import Conversation, MemoryItem, Message
from tests.support.browser import log_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

SAID = "I'm on the storage team. How do I compress a dump with zstd?"


@pytest.fixture
def memories(reader):
    conversation = Conversation.objects.create(owner=reader, title="Compression")
    question = Message.objects.create(conversation=conversation, role="user", content=SAID)
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="Use `zstd -19`.",
        reply_to=question,
        status="complete",
    )
    learned = memory_services.remember(
        user=reader,
        text="The user is on the storage team.",
        source_message=question,
        origin=MemoryItem.Origin.LEARNED,
    )
    written = memory_services.remember(user=reader, text="I prefer short answers")
    return question, learned, written


def test_an_edit_and_a_delete_are_confirmed_and_a_delete_asks_first(
    chat_server, page, reader, memories, screenshot
):
    _, learned, written = memories
    log_in(page, chat_server, reader.email)
    page.goto(chat_server + "/memory/")
    item = page.locator(f'.memory-item[data-id="{written.pk}"]')
    expect(item.get_by_text("Written by you")).to_be_visible()
    screenshot(page, "memory-page", full_page=True)

    item.locator("input[name=text]").fill("I prefer very short answers")
    item.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Saved: “I prefer very short answers”.")
    expect(page.locator(f"#memory-{written.pk}")).to_have_value("I prefer very short answers")

    # Delete asks first; keeping it changes nothing.
    page.locator(f'.memory-item[data-id="{learned.pk}"]').get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete this memory?")).to_be_visible()
    expect(page.locator(".memory-confirm-text")).to_have_text("The user is on the storage team.")
    screenshot(page, "memory-delete-confirm")
    page.get_by_role("link", name="Keep it").click()
    expect(page.locator(f'.memory-item[data-id="{learned.pk}"]')).to_be_visible()
    assert MemoryItem.objects.filter(pk=learned.pk).exists()

    page.locator(f'.memory-item[data-id="{learned.pk}"]').get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete").click()
    expect(page.locator(".messages")).to_contain_text(
        "Deleted: “The user is on the storage team.”. It won't be used again."
    )
    expect(page.locator(f'.memory-item[data-id="{learned.pk}"]')).to_have_count(0)
    assert not MemoryItem.objects.filter(pk=learned.pk).exists()


def test_a_learned_item_links_to_the_message_it_came_from(chat_server, page, reader, memories):
    question, learned, _ = memories
    log_in(page, chat_server, reader.email)
    page.goto(chat_server + "/memory/")
    item = page.locator(f'.memory-item[data-id="{learned.pk}"]')
    expect(item).to_contain_text("Learned automatically")
    item.get_by_role("link", name="your message").click()

    page.wait_for_url(f"{chat_server}/c/{question.conversation_id}#message-{question.pk}")
    linked = page.locator(f"#message-{question.pk}")
    expect(linked).to_contain_text(SAID)
    expect(linked).to_have_class(re.compile("is-linked"))
    expect(linked).to_be_in_viewport()
