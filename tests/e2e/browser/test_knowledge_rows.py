"""The Knowledge page's rows in a real browser: the server renders every row, the page swaps it in.

A row changes live (an upload, indexing progress, a re-index), after a poll, or after an action
the server refused; in each case the page must show exactly the row a reload would show.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from knowledge.models import Source
from tests.support.browser import PASSWORD, log_in, wait_for
from tests.support.knowledge import make_collection
from tests.support.sessions import session_cookie_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

RUNBOOK = "# Deploying\n\nRun `make deploy` from a clean checkout, then watch the dashboard.\n"

# A row's markup without what legitimately differs between two renderings of the same source:
# the CSRF token (masked anew each time) and the "Updated" time (a swapped row says "just now").
ROW_MARKUP_JS = """(id) => {
  const row = document.getElementById('source-' + id).cloneNode(true);
  row.querySelectorAll('input[name=csrfmiddlewaretoken]').forEach((input) => input.setAttribute('value', ''));
  const updated = row.querySelector('[data-field=updated]');
  updated.textContent = '';
  updated.removeAttribute('datetime');
  return row.outerHTML;
}"""

FOCUSED_JS = """() => {
  const element = document.activeElement;
  const form = element && element.closest('form[data-action]');
  return form ? form.dataset.action + ' ' + form.closest('tr').id : String(element && element.tagName);
}"""


def open_knowledge(page, base_url: str) -> None:
    page.goto(base_url + "/knowledge/")
    page.wait_for_function("() => window.AppEvents && window.AppEvents.connected")


def test_an_upload_is_shown_live_in_the_row_a_reload_shows(
    chat_server, indexing_worker, page, make_user, editors, tmp_path
):
    manager = make_user(email="manager@example.com", password=PASSWORD)
    manager.groups.add(editors)
    collection = make_collection("Runbooks", everyone=True, managers=[editors])
    (tmp_path / "deploy.md").write_text(RUNBOOK)
    log_in(page, chat_server, manager.email)
    open_knowledge(page, chat_server)
    section = page.locator(f"#collection-{collection.pk}")
    expect(section.locator("[data-empty]")).to_be_visible()

    section.locator(".file-input").set_input_files(str(tmp_path / "deploy.md"))
    source = wait_for(
        lambda: Source.objects.filter(name="deploy.md", status=Source.Status.READY).first(),
        timeout=90,
        message="the upload to be indexed",
    )
    row = page.locator(f"#source-{source.pk}")
    expect(row.locator("[data-field=status]")).to_have_text("Ready")
    expect(row.locator("[data-field=chunk_count]")).to_have_text(str(source.chunk_count))
    expect(row.locator("[data-field=updated]")).to_have_text("just now")
    expect(section.locator("[data-empty]")).to_be_hidden()
    live = page.evaluate(ROW_MARKUP_JS, source.pk)

    page.reload()
    expect(row.locator("[data-field=updated]")).not_to_have_text("just now")
    assert page.evaluate(ROW_MARKUP_JS, source.pk) == live

    # Re-index while a keyboard user sits on the row's Delete button: the row is swapped for
    # the server's as indexing moves on, and focus stays on that button.
    open_knowledge(page, chat_server)
    delete = row.get_by_role("button", name="Delete")
    delete.focus()
    row.locator("form[data-action=reindex]").evaluate("(form) => form.requestSubmit()")
    expect(row.locator("[data-field=updated]")).to_have_text("just now")
    wait_for(
        lambda: Source.objects.filter(pk=source.pk, status=Source.Status.READY).exists(),
        timeout=60,
        message="the re-index to finish",
    )
    expect(row.locator("[data-field=status]")).to_have_text("Ready")
    expect(row.get_by_role("button", name="Re-index")).to_be_enabled()
    assert page.evaluate(FOCUSED_JS) == f"delete source-{source.pk}"

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    expect(section.locator("[data-empty]")).to_be_visible()
    assert not Source.objects.filter(pk=source.pk).exists()
    assert page.problems == [], page.problems


def test_busy_rows_without_live_events_are_refreshed_by_the_poll(chat_server, page, make_user):
    uploader = make_user(email="uploader@example.com", is_staff=True)
    reader = make_user(email="reader@example.com", password=PASSWORD)
    collection = make_collection("Handbook", everyone=True)
    common = {"collection": collection, "owner": uploader, "kind": Source.Kind.FILE}
    embedding = Source.objects.create(
        name="travel.md", status=Source.Status.EMBEDDING, progress=40, **common
    )
    queued = Source.objects.create(name="expenses.md", status=Source.Status.QUEUED, **common)
    # The uploader's events never reach the reader: only the poll can bring the change.
    name, value = session_cookie_for(reader).split("=", 1)
    page.context.add_cookies([{"name": name, "value": value, "url": chat_server}])
    page.clock.install()
    page.goto(chat_server + "/knowledge/")
    row = page.locator(f"#source-{embedding.pk}")
    expect(row.locator("[data-field=status]")).to_have_text("Embedding")
    expect(row.locator("[data-field=progress]")).to_be_visible()

    Source.objects.filter(pk=embedding.pk).update(
        status=Source.Status.READY, progress=100, chunk_count=7
    )
    queued.delete()
    page.clock.run_for(16_000)  # one poll (every 15 s)

    expect(row.locator("[data-field=status]")).to_have_text("Ready")
    expect(row.locator("[data-field=chunk_count]")).to_have_text("7")
    expect(row.locator("[data-field=progress]")).to_be_hidden()
    expect(page.locator(f"#source-{queued.pk}")).to_have_count(0)
    expect(page.locator(f"#source-{embedding.pk}")).to_have_count(1)
    assert page.problems == [], page.problems


def test_a_refused_action_shows_its_error_in_the_row(chat_server, page, make_user, editors):
    uploader = make_user(email="uploader@example.com", is_staff=True)
    manager = make_user(email="manager@example.com", password=PASSWORD)
    manager.groups.add(editors)
    collection = make_collection("Runbooks", everyone=True, managers=[editors])
    source = Source.objects.create(
        collection=collection,
        owner=uploader,
        kind=Source.Kind.FILE,
        name="oncall.md",
        status=Source.Status.READY,
    )
    log_in(page, chat_server, manager.email)
    open_knowledge(page, chat_server)
    row = page.locator(f"#source-{source.pk}")
    Source.objects.filter(pk=source.pk).delete()  # elsewhere: no event reaches this page

    reindex = row.get_by_role("button", name="Re-index")
    reindex.click()
    error = row.locator("[data-field=error]")
    expect(error).to_have_text("Not found: it was deleted, or you may no longer change it.")
    expect(error).to_be_visible()
    expect(reindex).to_be_enabled()
    assert page.problems == [f"HTTP 404: {chat_server}/knowledge/sources/{source.pk}/reindex"]
