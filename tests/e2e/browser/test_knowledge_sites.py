"""A whole site added from the Knowledge page (issue 17), in Chromium against a Daphne and a
Celery worker of this module's own, both allowed to fetch "localhost" as an operator allows an
intranet: the sitemap is read by the worker, its pages arrive on the open page as rows that turn
Ready; a private address is refused at once, in words, and nothing is stored."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from knowledge.models import Sitemap, Source
from tests.support import processes
from tests.support.answering import scripted_env
from tests.support.browser import log_in
from tests.support.knowledge import make_collection
from tests.support.local_site import serve_site

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

FETCH_ENV = {"URL_FETCH_ALLOWED_HOSTS": "localhost", "URL_FETCH_ALLOWED_NETWORKS": ""}
SITEMAP = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{}</urlset>'
)


@pytest.fixture(scope="module")
def chat_server(django_db_setup, django_db_blocker, llm_server):
    """This module's Daphne, allowed to fetch localhost (the shared one is not)."""
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne(**scripted_env(llm_server), **FETCH_ENV)
    yield f"http://127.0.0.1:{port}"
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(proc)


@pytest.fixture(scope="module")
def celery_worker(django_db_setup, django_db_blocker):
    """This module's worker, with the same fetch rules as its Daphne."""
    with django_db_blocker.unblock():
        worker = processes.start_worker(name="sites-worker", **FETCH_ENV)
    yield worker
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(worker)


@pytest.fixture
def site():
    with serve_site() as site:
        yield site


def open_knowledge(page, base_url: str) -> None:
    page.goto(base_url + "/knowledge/")
    page.wait_for_function("() => window.AppEvents && window.AppEvents.connected")


def test_a_whole_site_added_from_the_page_arrives_as_rows_that_turn_ready(
    chat_server, celery_worker, page, admin, site, screenshot
):
    wiki = make_collection("Wiki", everyone=True)
    site.put(
        "/sitemap.xml",
        SITEMAP.format(
            f"<url><loc>{site.url('/vpn.html')}</loc></url>"
            f"<url><loc>{site.url('/printers.html')}</loc></url>"
        ),
        content_type="application/xml",
    )
    site.put("/vpn.html", "<h1>VPN</h1><p>Connect to the VPN with the company app.</p>")
    site.put("/printers.html", "<h1>Printers</h1><p>Printers are on every floor.</p>")
    log_in(page, chat_server, admin.email)
    open_knowledge(page, chat_server)
    section = page.locator(f"#collection-{wiki.pk}")
    expect(section.locator(".sitemap-form .hint")).to_contain_text("every 24 hours")

    section.get_by_label("Add a whole site").fill(site.url("/"))
    section.get_by_role("button", name="Add site").click()

    expect(section.locator(".sitemap-form [data-form-status]")).to_contain_text(
        "Reading " + site.url("/sitemap.xml")
    )
    expect(section.get_by_label("Add a whole site")).to_have_value("")
    for name in ("vpn.html", "printers.html"):
        row = section.locator("tr.source-row", has_text=name)
        # The worker reads the sitemap and indexes each page; the rows follow on the socket.
        expect(row.locator('[data-field="status"]')).to_have_text("Ready", timeout=120_000)
    screenshot(page, "knowledge-whole-site-added")
    assert Sitemap.objects.get().url == site.url("/sitemap.xml")
    assert Source.objects.filter(collection=wiki, sitemap__isnull=False).count() == 2
    assert page.problems == []


def test_a_whole_site_at_a_private_address_is_refused_at_once(
    chat_server, celery_worker, page, admin
):
    wiki = make_collection("Wiki", everyone=True)
    log_in(page, chat_server, admin.email)
    open_knowledge(page, chat_server)
    section = page.locator(f"#collection-{wiki.pk}")

    section.get_by_label("Add a whole site").fill("http://10.0.0.7/sitemap.xml")
    section.get_by_role("button", name="Add site").click()

    status = section.locator(".sitemap-form [data-form-status]")
    expect(status).to_have_class("form-status is-failed")
    expect(status).to_contain_text("internal address")
    assert not Sitemap.objects.exists() and not Source.objects.exists()
    assert page.problems == [f"HTTP 400: {chat_server}/knowledge/collections/{wiki.pk}/sitemaps"]
