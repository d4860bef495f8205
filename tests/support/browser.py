"""Debian's Chromium driven by Playwright (never `playwright install`: no browser downloads here),
and the steps browser tests share: signing in, waiting for the chat, watching for problems."""

from __future__ import annotations

import time
from collections.abc import Callable

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

PASSWORD = "correct horse battery"  # make_user's default password


def watch_for_problems(page) -> None:
    """Collects uncaught errors, console errors and failed requests in ``page.problems``."""
    page.problems = []

    def on_console(message):
        # A failed request also logs "Failed to load resource"; on_response names the URL.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            page.problems.append(f"console: {message.text}")

    def on_response(response):
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            page.problems.append(f"HTTP {response.status}: {response.url}")

    page.on("pageerror", lambda error: page.problems.append(f"pageerror: {error}"))
    page.on("console", on_console)
    page.on("response", on_response)


def log_in(page, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Signs in through the real login form and waits for the chat to be connected."""
    page.goto(base_url + "/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(base_url + "/")
    wait_until_connected(page)


def wait_until_connected(page) -> None:
    # Functions, not bare expressions: Playwright polls a bare expression with eval() in the
    # page, which the Content-Security-Policy (rightly) refuses.
    page.wait_for_function("() => document.getElementById('chat')?.dataset.ready === '1'")
    page.wait_for_function("() => window.AppEvents && window.AppEvents.connected")


def wait_for(
    predicate: Callable[[], object], timeout: float = 10, message: str = "condition"
) -> object:
    """Polls ``predicate`` (typically a database read) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
