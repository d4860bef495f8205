"""The chat page while Redis restarts (issue 15, fault 3), in Chromium against a Daphne of this
module's own whose Redis the test stops and starts (the shared ``chat_server`` and the suite's
Redis are never touched). Mid-answer, the page reconnects by itself and shows the saved answer
without a reload; a question asked while Redis is down is given back at once with a clear
notice, and goes through once Redis is back."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from assistant.models import Message
from tests.support import processes
from tests.support.answering import scripted_env
from tests.support.browser import log_in, wait_for
from tests.support.openai_server import Reply
from tests.support.redis_server import PrivateRedis

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

BOOKING = "How do I book a flight?"
MEALS = "How much are meals abroad reimbursed?"

LIVE_TEXT_JS = """(minimum) => {
  const answers = document.querySelectorAll('.message-answer');
  const last = answers[answers.length - 1];
  return Boolean(last && last.classList.contains('is-live')
    && last.querySelector('.answer-body').textContent.length >= minimum);
}"""


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with PrivateRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def chat_server(django_db_setup, django_db_blocker, llm_server, redis_server):
    """This module's Daphne, on its own Redis (the shared one of the same name is not used)."""
    env = {
        **scripted_env(llm_server),
        "REDIS_URL": redis_server.url,
        "PYTEST_XDIST_WORKER": "",  # keep database 0 of the private Redis (tests/settings.py)
        "MEMORY_AUTO_LEARN": "0",
    }
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne(**env)
    yield f"http://127.0.0.1:{port}"
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(proc)


def last_answer(page):
    return page.locator(".message-answer").last


def ask(page, text: str) -> None:
    page.fill("#question", text)
    page.press("#question", "Enter")


def disconnected(page) -> None:
    page.wait_for_function("() => !window.AppEvents.connected", timeout=10_000)
    expect(page.locator("[data-connection-status]")).to_be_visible()


def reconnected(page) -> None:
    page.wait_for_function("() => window.AppEvents.connected", timeout=30_000)
    expect(page.locator("[data-connection-status]")).to_be_hidden()


def test_mid_answer_the_page_reconnects_by_itself_and_shows_the_saved_answer(
    chat_server, redis_server, page, reader, handbook, answers, screenshot
):
    tokens = [f"leg{i} " for i in range(80)]
    answers.set(BOOKING, Reply(tokens=tokens, delay=0.06))
    log_in(page, chat_server, reader.email)
    page.evaluate("() => { window.notReloaded = true; }")
    ask(page, BOOKING)
    page.wait_for_function(LIVE_TEXT_JS, arg=5)

    redis_server.stop()
    disconnected(page)
    redis_server.start()
    reconnected(page)

    expect(last_answer(page)).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(last_answer(page).locator(".answer-body")).to_have_text("".join(tokens).strip())
    expect(page.locator(".message-answer")).to_have_count(1)
    expect(page.locator("[data-notice]")).to_be_hidden()  # nothing the person must act on
    assert page.evaluate("() => window.notReloaded === true"), "the page was reloaded"
    (stored,) = Message.objects.filter(role=Message.Role.ASSISTANT)
    assert (stored.status, stored.content) == ("complete", "".join(tokens))
    screenshot(page, "chat-after-redis-restart")
    assert page.problems == [], page.problems


def test_a_question_asked_while_redis_is_down_is_given_back_with_a_clear_notice(
    chat_server, redis_server, page, reader, handbook, answers, screenshot
):
    answers.set(MEALS, Reply(tokens=["Up to 60 euros a day [1]."]))
    log_in(page, chat_server, reader.email)

    redis_server.stop()
    try:
        disconnected(page)
        ask(page, MEALS)
        notice = page.locator("[data-notice]")
        expect(notice).to_be_visible(timeout=20_000)
        expect(notice).to_contain_text("briefly unavailable")
        expect(notice).to_contain_text("try again in a moment")
        # Given back, not held: the question is in the box again and nothing was stored.
        expect(page.locator("#question")).to_have_value(MEALS)
        expect(page.locator(".message-question")).to_have_count(0)
        screenshot(page, "chat-question-while-redis-is-down")
    finally:
        redis_server.start()
    assert not Message.objects.exists()

    reconnected(page)
    page.press("#question", "Enter")
    expect(last_answer(page)).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(last_answer(page).locator(".answer-body")).to_contain_text("Up to 60 euros a day")
    wait_for(lambda: Message.objects.filter(status="complete").exists(), message="the answer")
    # The browser logs the refused sockets' closes; nothing else may go wrong.
    assert [p for p in page.problems if "WebSocket" not in p] == [], page.problems
