"""The Knowledge page says, for every source, when it was last checked against its original and
when it last changed (issue 17): a web page checked on the schedule, changed once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from knowledge import services, syncing
from knowledge.models import Source
from tests.support.browser import PASSWORD, log_in
from tests.support.knowledge import make_collection
from tests.support.local_site import serve_site

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def _stamp(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def test_a_web_pages_row_shows_when_it_was_checked_and_when_it_changed(
    chat_server, page, reader, admin, settings, screenshot
):
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost"]
    wiki = make_collection("Wiki", everyone=True)
    with serve_site() as site:
        site.put("/guide.html", "<h1>Onboarding</h1><p>Badges are collected at reception.</p>")
        added = services.source_create_from_url(
            user=admin, collection=wiki, url=site.url("/guide.html")
        )
        services.source_index(source_id=added.source.pk)
        site.put("/guide.html", "<h1>Onboarding</h1><p>Badges come from the security desk.</p>")
        assert syncing.source_refresh(source_id=added.source.pk) == syncing.Outcome.CHANGED
    source = Source.objects.get(pk=added.source.pk)

    log_in(page, chat_server, reader.email)
    page.goto(chat_server + "/knowledge/")

    dates = page.locator(f"#source-{source.pk} .source-dates")
    expect(dates).to_be_visible()
    expect(dates).to_have_text(
        f"Checked {_stamp(source.last_checked_at)} · changed {_stamp(source.last_changed_at)}"
    )
    screenshot(page, "knowledge-source-checked-and-changed")
    assert page.problems == []


def test_a_manager_sees_a_page_marked_gone_while_the_knowledge_page_is_open(
    chat_server, page, make_user, editors, admin, settings, screenshot
):
    """The uploader is someone else: the manager's open page learns of it from the
    ``source.gone`` event every manager is sent, and shows the row as failed, with why."""
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost"]
    settings.URL_GONE_AFTER_TRIES = 2
    manager = make_user(email="manager@example.com", password=PASSWORD)
    manager.groups.add(editors)
    wiki = make_collection("Wiki", everyone=True, managers=[editors])
    with serve_site() as site:
        site.put("/old.html", "<h1>Old process</h1><p>Expenses go on the paper form.</p>")
        added = services.source_create_from_url(
            user=admin, collection=wiki, url=site.url("/old.html")
        )
        services.source_index(source_id=added.source.pk)
        log_in(page, chat_server, manager.email)
        page.goto(chat_server + "/knowledge/")
        page.wait_for_function("() => window.AppEvents && window.AppEvents.connected")
        row = page.locator(f"#source-{added.source.pk}")
        expect(row.locator("[data-field=status]")).to_have_text("Ready")

        site.remove("/old.html", status=410)
        # As a worker would, off the browser's thread (its event loop would refuse the push).
        with ThreadPoolExecutor(1) as worker:
            outcomes = worker.submit(_check_twice, added.source.pk).result(timeout=60)
        assert outcomes == [syncing.Outcome.MISSING, syncing.Outcome.GONE]

    expect(row.locator("[data-field=status]")).to_have_text("Failed")
    expect(row.locator("[data-field=error]")).to_contain_text("This page is gone")
    screenshot(page, "knowledge-source-gone")
    assert page.problems == []


def _check_twice(source_id: int) -> list[str]:
    try:
        return [syncing.source_refresh(source_id=source_id) for _ in range(2)]
    finally:
        connection.close()
