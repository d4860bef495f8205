"""The Django admin as a knowledge admin uses it, at 1366 x 768: one section per name, and a
sources list that fits the screen and says why a source failed."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from knowledge.models import Source
from tests.support.browser import log_in
from tests.support.knowledge import make_collection

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

LONG_NAME = "https://intranet.example.com/" + "very-long-path-segment/" * 10 + "index.html"
FAILED_REASON = (
    "intranet.example.com points to 10.0.0.7, a private or local address. Ask an administrator "
    "to allow it if this internal site should be fetched. " * 3
).strip()

SECTION_TITLES_JS = """() => Array.from(
  document.querySelectorAll('#content-main .module caption')
).map((caption) => caption.textContent.trim())"""

# The page must not scroll sideways, nor the list inside its own box (the admin wraps it in an
# `overflow-x: auto` block, which would hide the columns past the edge instead).
OVERFLOW_JS = """() => {
  const results = document.querySelector('#changelist .results');
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    listScrollWidth: results.scrollWidth,
    listWidth: results.clientWidth,
  };
}"""


@pytest.fixture
def admin_page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def test_the_admin_index_has_no_two_sections_with_the_same_title(chat_server, admin_page, admin):
    log_in(admin_page, chat_server, admin.email)
    admin_page.goto(chat_server + "/admin/")
    titles = admin_page.evaluate(SECTION_TITLES_JS)
    assert "Knowledge" in titles and len(titles) > 3
    assert len(titles) == len(set(titles)), titles


def test_the_sources_list_fits_1366_pixels_and_shows_why_a_source_failed(
    chat_server, admin_page, admin, screenshot
):
    collection = make_collection("Engineering handbook and runbooks for the platform team")
    Source.objects.create(
        collection=collection,
        kind=Source.Kind.URL,
        name=LONG_NAME,
        url=LONG_NAME,
        status=Source.Status.FAILED,
        error=FAILED_REASON,
    )
    for n in range(3):
        Source.objects.create(
            collection=collection,
            kind=Source.Kind.FILE,
            name=f"Quarterly-operations-review-{n}-with-an-unusually-long-file-name.pdf",
            status=Source.Status.READY,
            chunk_count=40 + n,
            # Checked and changed dates in the list: the widest its "checked" column gets.
            indexed_at=timezone.now(),
        )
    log_in(admin_page, chat_server, admin.email)
    admin_page.goto(chat_server + "/admin/knowledge/source/")
    row = admin_page.locator("#result_list tbody tr", has_text="Failed")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("a private or local address")  # the reason, shortened
    expect(row.locator(f'[title="{LONG_NAME}"]')).to_have_count(1)  # the full name on hover
    screenshot(admin_page, "admin-sources-1366")
    size = admin_page.evaluate(OVERFLOW_JS)
    assert size["scrollWidth"] <= size["innerWidth"], size
    assert size["listScrollWidth"] <= size["listWidth"], size
