"""A site's furniture found across its pages: real indexing, real PostgreSQL, no worker.

Pages are uploaded and indexed in this process as a worker would; a page whose chunks a later
page made out of date is put back in the queue, and the test indexes what is queued, as the
worker would. The header and footer here are plain text (no links, no telling class names), so
only the cross-page layer can recognise them.
"""

import pytest

from knowledge import services
from knowledge.models import Chunk, PageEdge, Source
from tests.support.knowledge import index_text, make_collection

pytestmark = pytest.mark.django_db

HEADER = "ACME intranet: internal use only"
MENU = "People · Policies · Travel · IT help"
FOOTER = "© 2026 ACME Corp. All rights reserved. Questions go to intranet@acme.example"
TOPICS = {
    "travel.html": ("Travel", "Book flights through the travel desk fourteen days ahead."),
    "leave.html": ("Leave", "Annual leave is 28 days, requested in the HR portal."),
    "laptops.html": ("Laptops", "Laptops are replaced every four years by the IT desk."),
}


def site_page(title: str, body: str, *, header=HEADER, footer=FOOTER) -> str:
    return (
        f"<html><head><title>{title}</title></head><body>"
        f"<div class='top'><p>{header}</p><p>{MENU}</p></div>"
        f"<div class='main'><h1>{title}</h1><p>{body}</p></div>"
        f"<div class='bottom'><p>{footer}</p></div></body></html>"
    )


def index_queued(collection) -> list[str]:
    """Runs what the indexing queue holds for ``collection``, as a worker would."""
    queued = list(Source.objects.filter(collection=collection, status=Source.Status.QUEUED))
    for source in queued:
        services.source_index(source_id=source.pk)
    return sorted(source.name for source in queued)


def chunk_texts(collection) -> dict[str, str]:
    texts: dict[str, list[str]] = {}
    for chunk in Chunk.objects.filter(collection=collection).select_related("source"):
        texts.setdefault(chunk.source.name, []).append(chunk.text)
    return {name: "\n".join(parts) for name, parts in texts.items()}


def test_three_pages_of_one_site_are_indexed_without_their_shared_header_menu_and_footer(admin):
    collection = make_collection("Intranet", everyone=True)
    for name, (title, body) in TOPICS.items():
        index_text(collection, name, site_page(title, body), user=admin)

    # The third page showed the furniture repeats; the two indexed before it go back in line.
    assert index_queued(collection) == ["leave.html", "travel.html"]

    texts = chunk_texts(collection)
    assert set(texts) == set(TOPICS)
    for name, (_title, body) in TOPICS.items():
        assert body in texts[name]
        for furniture in (HEADER, MENU, FOOTER):
            assert furniture not in texts[name], (name, furniture)
    assert all(
        s.status == Source.Status.READY for s in Source.objects.filter(collection=collection)
    )


def test_indexing_again_converges(admin):
    collection = make_collection("Intranet", everyone=True)
    for name, (title, body) in TOPICS.items():
        index_text(collection, name, site_page(title, body), user=admin)
    index_queued(collection)
    before = chunk_texts(collection)

    for source in Source.objects.filter(collection=collection):
        services.source_reindex(user=admin, source=source)
    assert len(index_queued(collection)) == 3

    assert chunk_texts(collection) == before
    assert index_queued(collection) == []  # nothing went back in line


def test_a_line_repeated_in_only_two_pages_is_kept(admin):
    collection = make_collection("Intranet", everyone=True)
    pages = list(TOPICS.items())
    for n, (name, (title, body)) in enumerate(pages):
        footer = "Owned by the travel and HR teams." if n < 2 else f"Owned by team {n}."
        index_text(collection, name, site_page(title, body, footer=footer), user=admin)
    index_queued(collection)

    texts = chunk_texts(collection)
    assert "Owned by the travel and HR teams." in texts["travel.html"]
    assert "Owned by the travel and HR teams." in texts["leave.html"]
    assert HEADER not in texts["laptops.html"]  # while the header on all three is dropped


def test_pages_in_another_collection_cannot_make_a_line_furniture(admin):
    """Someone who manages one collection must not be able to erase a sentence from another
    collection's pages by uploading copies of it."""
    target = make_collection("HR", everyone=True)
    index_text(target, "leave.html", site_page("Leave", "Annual leave is 28 days."), user=admin)
    attacker = make_collection("Scratch", everyone=True)
    for n in range(5):
        index_text(
            attacker, f"copy{n}.html", site_page(f"Copy {n}", f"Filler page {n}."), user=admin
        )
    index_queued(attacker)

    assert index_queued(target) == []
    text = chunk_texts(target)["leave.html"]
    assert HEADER in text and FOOTER in text  # one page of its own collection: nothing repeats
    assert "Annual leave is 28 days." in text


def test_deleting_a_page_deletes_its_edges(admin):
    collection = make_collection("Intranet", everyone=True)
    title, body = TOPICS["travel.html"]
    source = index_text(collection, "travel.html", site_page(title, body), user=admin)
    assert PageEdge.objects.filter(source=source).exists()

    services.source_delete(user=admin, source=source)

    assert not PageEdge.objects.exists()


def test_markdown_and_text_files_are_not_counted(admin):
    collection = make_collection("Notes", everyone=True)
    for n in range(3):
        index_text(collection, f"note{n}.md", f"# Note {n}\n\n{FOOTER}\n\nBody {n}.\n", user=admin)
    assert not PageEdge.objects.exists()
    assert all(FOOTER in text for text in chunk_texts(collection).values())


def test_a_failed_page_is_not_queued_again_by_every_later_page_of_its_site(admin):
    """A failed page keeps the edges of its last good version; were it re-queued whenever the
    counts moved, a dead page would be fetched and fail again on every write to its site."""
    collection = make_collection("Intranet", everyone=True)
    names = list(TOPICS)
    for name in names[:2]:
        index_text(collection, name, site_page(*TOPICS[name]), user=admin)
    failed = Source.objects.get(collection=collection, name=names[1])
    services.source_mark_failed(source_id=failed.pk, message="The page is gone (404).")

    index_text(collection, names[2], site_page(*TOPICS[names[2]]), user=admin)

    assert index_queued(collection) == [names[0]]  # the ready page only
    failed.refresh_from_db()
    assert failed.status == Source.Status.FAILED and "404" in failed.error
