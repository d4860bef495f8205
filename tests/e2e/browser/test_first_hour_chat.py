"""The chat as a new person meets it in the first hour (issue 14): the empty state of an empty
install, example questions from the documents they may read, source entries grouped by
document, links to the cited passage, and conversation titles that can be read.

Real Chromium, Daphne, PostgreSQL and Redis (see conftest.py); the in-process twin of the
empty state is tests/chat/test_chat_page.py.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from assistant.models import Citation, Conversation, Message
from knowledge.models import Chunk
from tests.support.browser import log_in, wait_until_connected
from tests.support.knowledge import SECRET_TEXT, index_text, make_collection
from tests.support.openai_server import Reply

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

# Sections long enough to be passages of their own (short ones merge under the title).
_FILLER = " ".join(
    ["Dead row versions stay on disk until a vacuum marks their space reusable."] * 12
)
VACUUM = f"""# Routine Vacuuming

## Recovering disk space
VACUUM reclaims storage occupied by dead tuples. {_FILLER}

## Updating planner statistics
ANALYZE collects statistics about the contents of tables. {_FILLER}
"""
BACKUP = """# Backup and Restore

## SQL dump
pg_dump writes a consistent snapshot of one database as SQL commands.
"""


def assert_no_page_problems(page):
    assert page.problems == [], page.problems


# --- item 3: the empty state ------------------------------------------------------------


def test_an_empty_install_says_who_can_add_documents_and_sends_managers_to_knowledge(
    chat_server, page, make_user, screenshot
):
    editors = Group.objects.create(name="editors")
    make_collection("Handbook", everyone=True, managers=[editors])
    reader = make_user(email="new-reader@example.com")
    manager = make_user(email="new-manager@example.com")
    manager.groups.add(editors)

    log_in(page, chat_server, reader.email)
    empty = page.locator("[data-empty-state]")
    expect(empty.locator("h2")).to_have_text("No documents to answer from yet")
    expect(empty).to_contain_text("An administrator or a collection manager can add them")
    expect(empty.locator("[data-example]")).to_have_count(0)  # nothing there could be answered
    expect(empty.locator("a")).to_have_count(0)
    screenshot(page, "first-hour-empty-reader")

    page.context.clear_cookies()
    log_in(page, chat_server, manager.email)
    expect(empty.locator("h2")).to_have_text("Add a document to get started")
    expect(empty.locator("[data-example]")).to_have_count(0)
    screenshot(page, "first-hour-empty-manager")
    empty.locator("[data-knowledge-link]").click()
    expect(page).to_have_url(chat_server + "/knowledge/")
    expect(page.locator(".collection .file-input")).to_have_count(1)  # where they add one
    assert_no_page_problems(page)


def test_examples_come_from_the_readers_documents_and_ask_them(
    chat_server, page, reader, admin, answers, screenshot
):
    hr = Group.objects.create(name="hr")
    index_text(make_collection("HR", readers=[hr]), "salaries.md", SECRET_TEXT, user=admin)
    index_text(make_collection("Operations", everyone=True), "vacuum.md", VACUUM, user=admin)
    question = "What does “Routine Vacuuming” say about “Recovering disk space”?"
    answers.set(question, Reply(tokens=["VACUUM reclaims storage occupied by dead tuples [1]."]))

    log_in(page, chat_server, reader.email)
    examples = page.locator("[data-empty-state] [data-example]")
    expect(examples).to_have_text(
        [question, "What does “Routine Vacuuming” say about “Updating planner statistics”?"]
    )
    # Nothing of the collection they cannot read: not its title, not its sections.
    empty_text = page.locator("[data-empty-state]").inner_text()
    assert "Salary" not in empty_text and "Engineering" not in empty_text
    assert "annual leave" not in empty_text and "IT support" not in empty_text
    screenshot(page, "first-hour-examples")

    examples.first.click()
    expect(page.locator(".message-question .question-text")).to_have_text(question)
    expect(page.locator(".message-answer")).to_have_attribute("data-status", "complete")
    assert_no_page_problems(page)


# --- items 7 and 8: sources grouped by document, links to the cited passage ---------------


def _grouped_answer(owner, admin):
    """An answer from three passages: two of one document, one of another (a web page).
    It cites 1 and 3, not 2: passage 2 is greyed inside its entry."""
    operations = make_collection("Operations", everyone=True)
    vacuum = index_text(operations, "routine-vacuuming.md", VACUUM, user=admin)
    backup = index_text(operations, "backup.md", BACKUP, user=admin)
    by_section = {}  # the first passage of each of its two sections
    for chunk in Chunk.objects.filter(source=vacuum).order_by("ordinal"):
        by_section.setdefault(chunk.heading_path[-1], chunk)
    vacuum_chunks = list(by_section.values())
    assert len(vacuum_chunks) == 2, by_section
    (backup_chunk,) = Chunk.objects.filter(source=backup)
    picked = [
        (vacuum_chunks[0], ""),
        (vacuum_chunks[1], ""),
        (backup_chunk, "https://www.postgresql.org/docs/current/backup-dump.html"),
    ]
    sources = [
        {
            "n": n,
            "chunk_id": chunk.pk,
            "source_id": chunk.source_id,
            "collection_id": chunk.collection_id,
            "title": chunk.document.title,
            "source_name": chunk.source.name,
            "url": url,
            "heading": chunk.heading_path[-1] if chunk.heading_path else "",
            "page": None,
            "text": chunk.text,
        }
        for n, (chunk, url) in enumerate(picked, 1)
    ]
    conversation = Conversation.objects.create(owner=owner, title="Keeping tables healthy")
    question = Message.objects.create(
        conversation=conversation, role="user", content="How do I keep tables healthy?"
    )
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="Vacuum reclaims space [1]; a dump backs the database up [3].",
        reply_to=question,
        sources=sources,
    )
    for s, (chunk, _) in zip(sources, picked, strict=True):
        if s["n"] in (1, 3):
            Citation.objects.create(
                message=answer,
                chunk=chunk,
                collection_id=s["collection_id"],
                source_id=s["source_id"],
                number=s["n"],
                quote=s["text"],
                document_title=s["title"],
                source_name=s["source_name"],
                source_url=s["url"],
                heading=s["heading"],
            )
    return conversation, vacuum_chunks, backup_chunk


def test_sources_are_grouped_by_document_with_sections_first_and_say_why_one_is_greyed(
    chat_server, page, reader, admin, screenshot
):
    conversation, vacuum_chunks, backup_chunk = _grouped_answer(reader, admin)
    log_in(page, chat_server, reader.email)
    page.goto(f"{chat_server}/c/{conversation.pk}")
    wait_until_connected(page)
    answer = page.locator(".message-answer").last
    expect(answer).to_have_attribute("data-status", "complete")

    entries = answer.locator(".sources-list .source-item")
    expect(entries).to_have_count(2)  # one per document, not one per passage
    vacuum, backup = entries.nth(0), entries.nth(1)
    expect(vacuum.locator(".source-number")).to_have_text(["1", "2"])
    expect(vacuum.locator(".source-label")).to_have_text(
        "Recovering disk space · Updating planner statistics — Routine Vacuuming"
        " (routine-vacuuming.md)"
    )
    expect(backup.locator(".source-number")).to_have_text(["3"])
    expect(backup.locator(".source-label")).to_have_text(
        "SQL dump — Backup and Restore (backup.md)"
    )

    # Passage 2 is found but not cited: greyed, and its tooltip says so; its entry is not.
    uncited = vacuum.locator('.source-number[data-cite="2"]')
    expect(uncited).to_have_class(re.compile(r"\bis-uncited\b"))
    expect(uncited).to_have_attribute(
        "title",
        "Passage 2: Updating planner statistics — Routine Vacuuming (not cited in the answer)",
    )
    expect(vacuum).not_to_have_class(re.compile(r"\bis-uncited\b"))
    expect(vacuum.locator(".source-note")).to_be_hidden()
    screenshot(page, "first-hour-grouped-sources")

    # Each number opens its own passage; the link goes to that passage on the source page.
    panel = page.locator("[data-citation-panel]")
    uncited.click()
    expect(panel.locator("[data-panel-number]")).to_have_text("[2]")
    expect(panel.locator("[data-panel-quote]")).to_contain_text("ANALYZE collects statistics")
    expect(panel.locator("[data-panel-link]")).to_have_attribute(
        "href",
        f"/knowledge/sources/{vacuum_chunks[1].source_id}/?chunk={vacuum_chunks[1].pk}#chunk-{vacuum_chunks[1].pk}",
    )
    expect(panel.locator("[data-panel-link]")).to_have_text("Open this passage in its document")
    expect(panel.locator("[data-panel-passage]")).to_be_hidden()

    # A web page opens at its address, and its passage in Knowledge is one more link.
    answer.locator('.answer-body .cite-chip[data-cite="3"]').click()
    expect(panel.locator("[data-panel-link]")).to_have_attribute(
        "href", "https://www.postgresql.org/docs/current/backup-dump.html"
    )
    expect(panel.locator("[data-panel-passage]")).to_have_attribute(
        "href",
        f"/knowledge/sources/{backup_chunk.source_id}/?chunk={backup_chunk.pk}#chunk-{backup_chunk.pk}",
    )
    screenshot(page, "first-hour-passage-link")

    # The source page the link leads to is there for this reader.
    response = page.request.get(f"{chat_server}/knowledge/sources/{backup_chunk.source_id}/")
    assert response.status == 200
    assert_no_page_problems(page)


def test_an_entry_none_of_whose_passages_is_cited_says_so(chat_server, page, reader, admin):
    conversation, _, _ = _grouped_answer(reader, admin)
    answer_message = Message.objects.get(conversation=conversation, role="assistant")
    answer_message.content = "Vacuum reclaims space [1]."
    answer_message.save(update_fields=["content"])
    Citation.objects.filter(message=answer_message, number=3).delete()

    log_in(page, chat_server, reader.email)
    page.goto(f"{chat_server}/c/{conversation.pk}")
    wait_until_connected(page)
    backup = page.locator(".message-answer .sources-list .source-item").nth(1)
    expect(backup).to_have_class(re.compile(r"\bis-uncited\b"))
    expect(backup.locator(".source-note")).to_have_text("not cited in the answer")
    expect(backup.locator(".source-button")).to_have_attribute(
        "title", re.compile(r"\(not cited in the answer\)$")
    )
    assert_no_page_problems(page)


# --- item 13: conversation titles in the sidebar ----------------------------------------

LONG_TITLE = "Quarterly planning for the platform team: budget and hiring."  # 60 characters

# How many characters of an element's text are inside its visible box (clipped ones are not).
VISIBLE_CHARACTERS_JS = """(element) => {
  const box = element.getBoundingClientRect();
  const text = element.firstChild;
  const range = document.createRange();
  let visible = 0;
  for (let i = 0; i < text.length; i++) {
    range.setStart(text, i);
    range.setEnd(text, i + 1);
    const r = range.getBoundingClientRect();
    if (r.width > 0 && r.right <= box.right + 0.5 && r.bottom <= box.bottom + 0.5) visible += 1;
  }
  return visible;
}"""


def test_a_long_conversation_title_shows_more_than_twenty_characters_and_all_on_hover(
    chat_server, page, reader
):
    assert len(LONG_TITLE) == 60
    conversation = Conversation.objects.create(owner=reader, title=LONG_TITLE)
    log_in(page, chat_server, reader.email)
    item = page.locator(f'[data-conversation-id="{conversation.pk}"]')
    name = item.locator(".conversation-name")
    expect(name).to_have_text(LONG_TITLE)
    visible = name.evaluate(VISIBLE_CHARACTERS_JS)
    assert visible >= 40, f"only {visible} of 60 characters can be read"
    two_lines = "(el) => el.clientHeight >= 1.5 * parseFloat(getComputedStyle(el).lineHeight)"
    assert name.evaluate(two_lines)
    link = item.locator(".conversation-link")
    expect(link).to_have_attribute("title", LONG_TITLE)
    link.hover()  # the whole title on hover: the native tooltip of the link's title
    expect(item.locator('[data-action="rename"]')).to_be_visible()
    assert_no_page_problems(page)
