"""The knowledge page in a real Chromium against a real Daphne and Celery worker: a manager
uploads, watches indexing live over the events socket, and deletes."""

from __future__ import annotations

import shutil

import pytest
from django.contrib.auth.models import Group

from knowledge.models import Collection, Source
from tests.support.sessions import session_cookie_for

MARKDOWN = b"# Deploying\n\nRun `make deploy` from a clean checkout.\n"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_manager_uploads_watches_indexing_live_and_deletes_in_a_browser(
    daphne_server, celery_worker, make_user, tmp_path, monkeypatch, screenshot
):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("needs Debian's chromium (make test installs it)")
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls below are plain sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    admins = Group.objects.create(name="Runbook admins")
    runbooks = Collection.objects.create(name="Runbooks", visibility="everyone")
    runbooks.manage_groups.add(admins)
    manager = make_user()
    manager.groups.add(admins)
    cookie_name, cookie_value = session_cookie_for(manager).split("=", 1)
    (tmp_path / "deploy.md").write_bytes(MARKDOWN)
    (tmp_path / "setup.exe").write_bytes(b"MZ\x90\x00")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context()
        context.add_cookies([{"name": cookie_name, "value": cookie_value, "url": daphne_server}])
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{daphne_server}/knowledge/")
        page.wait_for_function("() => window.AppEvents && window.AppEvents.connected")
        section = page.locator(f"#collection-{runbooks.pk}")
        section.locator(".file-input").set_input_files(
            [str(tmp_path / "deploy.md"), str(tmp_path / "setup.exe")]
        )
        expect(section.locator(".upload-item.is-failed")).to_contain_text("Supported types")
        row = section.locator("tr.source-row", has_text="deploy.md")
        # Indexing runs in the worker; the row follows it through the events socket.
        expect(row.locator('[data-field="status"]')).to_have_text("Ready", timeout=120_000)
        assert int(row.locator('[data-field="chunk_count"]').text_content()) >= 1
        screenshot(page, "knowledge-first-upload")  # docs/screenshots/ (README)

        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name="Delete").click()
        expect(row).to_have_count(0)
        browser.close()
    assert errors == []
    assert not Source.objects.filter(collection=runbooks).exists()
