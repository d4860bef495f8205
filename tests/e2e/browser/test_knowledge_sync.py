"""The Knowledge page says, for every source, when it was last checked against its original and
when it last changed (issue 17): a web page checked on the schedule, changed once."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from knowledge import services, syncing
from knowledge.models import Source
from tests.support.browser import log_in
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
