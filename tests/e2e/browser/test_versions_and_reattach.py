"""Versions of an answer and following an answer after a reload, in a real browser (see
conftest.py for the stack): regenerate, go back to 1/2, reload, still 1/2; reload mid-answer,
the text keeps coming and Stop works."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from assistant.models import Message
from tests.support.browser import log_in, wait_for, wait_until_connected
from tests.support.openai_server import Reply

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

BOOKING = "How do I book a flight?"
FIRST = "Book through the travel desk [1]."
SECOND = "Ask the travel desk fourteen days ahead [1]."


def last_answer(page):
    return page.locator(".message-answer").last


def ask(page, text: str) -> None:
    page.fill("#question", text)
    page.press("#question", "Enter")


def test_regenerate_then_go_back_to_the_first_version_and_it_stays_after_a_reload(
    chat_server, page, reader, handbook, answers, screenshot
):
    answers.set(BOOKING, Reply(tokens=[FIRST]), Reply(tokens=[SECOND]))
    log_in(page, chat_server, reader.email)
    ask(page, BOOKING)
    expect(last_answer(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    body = last_answer(page).locator(".answer-body")
    expect(body).to_have_text("Book through the travel desk 1.")
    expect(last_answer(page).locator(".version-switcher")).to_have_count(0)  # one version

    last_answer(page).locator('[data-action="regenerate"]').click()
    expect(body).to_have_text("Ask the travel desk fourteen days ahead 1.", timeout=15_000)
    label = last_answer(page).locator(".version-label")
    expect(label).to_have_text("2/2")
    expect(label).to_have_attribute("aria-label", "Version 2 of 2")

    # By keyboard: the previous version, then focus stays on the switcher.
    last_answer(page).locator('[data-version="prev"]').focus()
    page.keyboard.press("Enter")
    expect(label).to_have_text("1/2")
    expect(body).to_have_text("Book through the travel desk 1.")
    expect(last_answer(page).locator('[data-version="prev"]')).to_be_disabled()
    expect(last_answer(page).locator('[data-version="next"]')).to_be_focused()
    screenshot(page, "chat-answer-versions")

    page.reload()
    wait_until_connected(page)
    expect(last_answer(page).locator(".version-label")).to_have_text("1/2")
    expect(last_answer(page).locator(".answer-body")).to_have_text(
        "Book through the travel desk 1."
    )
    shown = Message.objects.get(role=Message.Role.ASSISTANT, superseded=False)
    assert shown.content == FIRST

    # An edited question is a version of the question, and the title follows it.
    edited = "How early must I book a flight?"
    answers.set(edited, Reply(tokens=["Fourteen days before departure [1]."]))
    question = page.locator(".message-question").last
    question.hover()
    question.locator('[data-action="edit"]').click()
    page.fill(".edit-form textarea", edited)
    page.click(".edit-form button[type=submit]")
    expect(question.locator(".version-label")).to_have_text("2/2", timeout=15_000)
    expect(page.locator("#conversation-title")).to_have_text(edited)
    expect(last_answer(page).locator(".version-switcher")).to_have_count(0)
    screenshot(page, "chat-question-versions")
    question.locator('[data-version="prev"]').click()
    expect(question.locator(".question-text")).to_have_text(BOOKING)
    expect(last_answer(page).locator(".version-label")).to_have_text("1/2")  # as it was
    expect(page.locator("#conversation-title")).to_have_text(BOOKING)
    assert page.problems == [], page.problems


def test_a_reload_mid_answer_keeps_streaming_and_stop_works(
    chat_server, page, reader, handbook, answers, llm_server, screenshot
):
    tokens = [f"step{i} " for i in range(400)]
    answers.set(BOOKING, Reply(tokens=tokens, delay=0.04))
    log_in(page, chat_server, reader.email)
    ask(page, BOOKING)
    expect(last_answer(page).locator(".answer-body")).to_contain_text("step3")

    page.reload()
    wait_until_connected(page)
    answer = last_answer(page)
    expect(answer).to_have_class(re.compile(r"\bis-live\b"))
    stop = page.locator('[data-action="stop"]')
    expect(stop).to_be_visible()
    expect(answer.locator(".answer-status")).to_be_hidden()  # no "Still writing…": it is live
    # The text keeps coming after the reload.
    shown = len(answer.locator(".answer-body").inner_text())
    page.wait_for_function(
        """(shown) => {
          const answers = document.querySelectorAll('.message-answer');
          const body = answers[answers.length - 1].querySelector('.answer-body');
          return body.textContent.length > shown + 20;
        }""",
        arg=shown,
    )
    screenshot(page, "chat-reattached-mid-answer")

    stop.click()
    expect(answer).to_have_attribute("data-status", "stopped")
    expect(answer.locator(".answer-status")).to_have_text("Stopped")
    expect(stop).to_be_hidden()
    stored = wait_for(
        lambda: Message.objects.filter(role="assistant", status="stopped").first(),
        message="the stopped answer",
    )
    # Every word once, in order: what the page shows is what was saved.
    assert answer.locator(".answer-body").inner_text() == stored.content.strip()
    assert stored.content.startswith("step0 step1 step2 ")
    request = llm_server.chat_requests[-1]
    assert request.disconnected.wait(5), "the model request was not closed"
    assert request.tokens_sent < len(tokens)
    assert page.problems == [], page.problems
