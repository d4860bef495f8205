"""The Knowledge page with an ingest backlog, in a real browser: a collection of 5,000 queued
sources shows its 50 newest and pages through the rest; rows on a page still change live."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from playwright.sync_api import expect

from knowledge import services
from knowledge.models import Source
from tests.support.browser import PASSWORD, log_in
from tests.support.knowledge import make_collection

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

BACKLOG = 5000


def in_another_thread(function, **kwargs):
    """Runs a service as a worker would: its event is sent with async_to_sync, which cannot run
    on this thread while Playwright's loop does."""

    def run():
        try:
            return function(**kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def test_a_backlog_of_5000_queued_sources_is_paged_and_its_rows_still_change_live(
    chat_server, page, make_user, editors, screenshot
):
    manager = make_user(email="manager@example.com", password=PASSWORD)
    manager.groups.add(editors)
    collection = make_collection("Intranet", everyone=True, managers=[editors])
    Source.objects.bulk_create(
        Source(
            collection=collection,
            owner=manager,
            kind=Source.Kind.URL,
            name=f"https://intranet.example.com/page-{i}",
            url=f"https://intranet.example.com/page-{i}",
            status=Source.Status.QUEUED,
        )
        for i in range(BACKLOG)
    )
    log_in(page, chat_server, manager.email)
    page.goto(chat_server + "/knowledge/")
    page.wait_for_function("() => window.AppEvents && window.AppEvents.connected")
    section = page.locator(f"#collection-{collection.pk}")
    expect(section.locator("tr.source-row")).to_have_count(50)
    pager = section.get_by_role("navigation", name="Pages of Intranet")
    expect(pager).to_contain_text(f"Sources 1–50 of {BACKLOG}, newest first")
    pager.scroll_into_view_if_needed()
    screenshot(page, "knowledge-backlog-paged")

    # A row on the page still follows its source live (the uploader's event, then its row).
    newest = Source.objects.filter(collection=collection).order_by("-created_at", "-id").first()
    in_another_thread(services.source_mark_failed, source_id=newest.pk, message="Unreachable.")
    row = page.locator(f"#source-{newest.pk}")
    expect(row.locator("[data-field=status]")).to_have_text("Failed")

    pager.get_by_role("link", name="Older").click()
    expect(pager).to_contain_text(f"Sources 51–100 of {BACKLOG}")
    expect(section.locator("tr.source-row")).to_have_count(50)
    expect(row).to_have_count(0)
    pager.get_by_role("link", name="Newer").click()
    expect(pager).to_contain_text(f"Sources 1–50 of {BACKLOG}")
    expect(row.locator("[data-field=status]")).to_have_text("Failed")

    # The backlog being worked through sends events about sources on later pages: they stay
    # there. A new source (added in another tab) comes to the top of the first page. Events
    # reach the page in order, so once the new row is shown the old one's event was handled.
    oldest = Source.objects.filter(collection=collection).order_by("created_at", "id").first()
    in_another_thread(services.source_mark_failed, source_id=oldest.pk, message="Unreachable.")
    added = in_another_thread(
        services.source_create_from_upload,
        user=manager,
        collection=collection,
        filename="new-policy.md",
        data=b"# New policy\n\nBook early.\n",
    ).source
    expect(section.locator("tr.source-row").first).to_have_id(f"source-{added.pk}")
    expect(page.locator(f"#source-{oldest.pk}")).to_have_count(0)
    expect(section.locator("tr.source-row")).to_have_count(51)
