"""The send-buffer bound (assistant/project/backpressure.py) never cuts a browser that reads:
a long answer streamed as fast as the server writes reaches Chromium whole, over the one
socket the page opened. (The slow client it does cut: tests/e2e/test_slow_client.py.)"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from assistant.models import Message
from tests.support.browser import log_in, wait_for
from tests.support.openai_server import Reply

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

QUESTION = "How do I book a flight?"
# About 35 KB, five times a long answer, with no delay between tokens.
TOKENS = [f"Step {i}: book through the travel desk first. " for i in range(800)]


def test_a_long_answer_reaches_the_browser_whole_over_the_socket_it_opened(
    chat_server, page, reader, handbook, answers
):
    opened, closed = [], []

    def on_socket(socket) -> None:
        opened.append(socket.url)
        socket.on("close", lambda _: closed.append(socket.url))

    page.on("websocket", on_socket)
    answers.set(QUESTION, Reply(tokens=TOKENS))
    log_in(page, chat_server, reader.email)
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")

    answer = wait_for(
        lambda: Message.objects.filter(role="assistant", status="complete").first(),
        timeout=60,
        message="the answer to be stored",
    )
    assert answer.content == "".join(TOKENS)
    body = page.locator(".message-answer").last.locator(".answer-body")
    expect(body).to_contain_text("Step 799: book through the travel desk first.", timeout=30_000)
    expect(body).to_contain_text("Step 0: book through")
    assert len(opened) == 1 and closed == [], (opened, closed)
