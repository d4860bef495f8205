"""The Knowledge pages as a new knowledge admin meets them (issue 14): a first collection with no
groups yet, an internal web address, a citation's passage, and a citation to a removed source."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from knowledge import services
from knowledge.models import Collection, Source
from tests.support.browser import log_in
from tests.support.knowledge import index_text, long_source, make_collection

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

TARGET_JS = """() => {
  const target = document.querySelector(':target');
  if (!target) return null;
  const box = target.getBoundingClientRect();
  return {
    id: target.id,
    shadow: getComputedStyle(target).boxShadow,
    inView: box.top >= 0 && box.top < window.innerHeight,
  };
}"""


def open_knowledge(page, base_url: str) -> None:
    page.goto(base_url + "/knowledge/")
    page.wait_for_function("() => window.AppEvents && window.AppEvents.connected")


def test_a_first_collection_with_no_groups_is_for_everyone_and_says_where_groups_come_from(
    chat_server, page, admin, screenshot
):
    log_in(page, chat_server, admin.email)
    open_knowledge(page, chat_server)
    page.locator(".new-collection summary").click()
    form = page.locator(".new-collection form")
    expect(form.get_by_label("Everyone signed in")).to_be_checked()
    expect(form).to_contain_text("There are no groups yet")
    expect(form).to_contain_text("single sign-on")
    expect(form.get_by_role("link", name="manage groups")).to_have_attribute(
        "href", "/admin/auth/group/"
    )
    screenshot(page, "knowledge-new-collection-no-groups")
    form.get_by_label("Name").fill("Handbook")
    form.get_by_role("button", name="Create collection").click()
    expect(page.locator("#knowledge h2", has_text="Handbook")).to_be_visible()
    assert Collection.objects.get(name="Handbook").visibility == Collection.Visibility.EVERYONE
    assert page.problems == []


def test_an_internal_web_address_is_refused_at_once_naming_the_setting(
    chat_server, page, admin, screenshot
):
    collection = make_collection("Wiki", everyone=True)
    log_in(page, chat_server, admin.email)
    open_knowledge(page, chat_server)
    section = page.locator(f"#collection-{collection.pk}")
    section.get_by_label("Add web page").fill("http://127.0.0.1:5432/")
    section.get_by_role("button", name="Add page").click()
    status = section.locator(".page-form [data-form-status]")
    expect(status).to_have_class("form-status is-failed")
    expect(status).to_contain_text("add 127.0.0.1 to URL_FETCH_ALLOWED_HOSTS")
    screenshot(page, "knowledge-internal-url-refused")
    assert not Source.objects.exists()
    # The refusal is the reply's 400, nothing else went wrong.
    assert page.problems == [f"HTTP 400: {chat_server}/knowledge/collections/{collection.pk}/urls"]


def test_a_citations_link_opens_the_cited_passage_highlighted(chat_server, page, reader):
    collection = make_collection("Handbook", everyone=True)
    source, chunks = long_source(
        collection, 80, text="Passage number {i} of the policy.\n\nIt has two paragraphs."
    )
    cited = chunks[67]  # on the second page of 50, far down
    log_in(page, chat_server, reader.email)
    page.goto(f"{chat_server}/knowledge/sources/{source.pk}/?chunk={cited.pk}#chunk-{cited.pk}")
    target = page.wait_for_function(TARGET_JS).json_value()
    assert target["id"] == f"chunk-{cited.pk}"
    assert target["inView"] and target["shadow"] != "none"
    expect(page.locator(f"#chunk-{cited.pk}")).to_contain_text("Passage number 67")
    expect(page.locator(f"#chunk-{cited.pk}")).to_contain_text("The cited passage")
    assert page.problems == []


def test_a_citation_to_a_removed_source_says_it_was_removed(
    chat_server, page, admin, reader, screenshot
):
    collection = make_collection("Handbook", everyone=True)
    source = index_text(collection, "leave.md", "# Leave\n\nTwenty-five days.", user=admin)
    source_id = source.pk
    services.source_delete(user=admin, source=source)
    log_in(page, chat_server, reader.email)
    response = page.goto(f"{chat_server}/knowledge/sources/{source_id}/")
    assert response.status == 410
    expect(page.locator("h1")).to_have_text("leave.md was removed")
    expect(page.locator(".source-removed")).to_contain_text("removed from Handbook on")
    expect(page.locator(".source-removed")).not_to_contain_text(admin.email)
    screenshot(page, "knowledge-source-removed")
    assert page.problems == [f"HTTP 410: {chat_server}/knowledge/sources/{source_id}/"]
