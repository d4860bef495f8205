"""Builds real indexed knowledge for tests through the real services (no worker needed), and
checks what indexing keeps in step (the word statistics)."""

from __future__ import annotations

import time

from django.contrib.auth.models import Group
from django.db import connection

from knowledge import services
from knowledge.models import Chunk, Collection, Document, Source

# The travel handbook most answering tests ask about (two sections, three passages).
HANDBOOK = """# Travel policy

## Booking flights
Employees book flights through the travel desk at least fourteen days before departure.
Economy class is the default for flights shorter than six hours.

## Expenses
Meals abroad are reimbursed up to 60 euros per day with receipts.
"""


def make_collection(
    name: str, *, everyone: bool = False, readers: list[Group] = (), managers: list[Group] = ()
) -> Collection:
    collection = Collection.objects.create(
        name=name,
        visibility=Collection.Visibility.EVERYONE if everyone else Collection.Visibility.GROUPS,
    )
    collection.read_groups.set(readers)
    collection.manage_groups.set(managers)
    return collection


def index_text(collection: Collection, filename: str, text: str, *, user) -> Source:
    """Uploads ``text`` as a file and indexes it in this process, as a worker would.

    In a module that also runs a real worker, the upload's task may reach it first: then the
    worker holds the source (``SourceBusy``) and this waits for it to finish instead."""
    result = services.source_create_from_upload(
        user=user, collection=collection, filename=filename, data=text.encode()
    )
    try:
        services.source_index(source_id=result.source.pk)
    except services.SourceBusy:
        deadline = time.monotonic() + 60
        while Source.objects.get(pk=result.source.pk).is_busy:
            assert time.monotonic() < deadline, "the worker holding the source never finished"
            time.sleep(0.05)
    source = Source.objects.get(pk=result.source.pk)
    assert source.status == Source.Status.READY, source.error
    return source


def long_source(
    collection: Collection, count: int, *, text: str = "passage number {i}."
) -> tuple[Source, list[Chunk]]:
    """A ready source of ``count`` passages (``text`` formatted with each ordinal ``i``), written
    directly: for pages of passages, where indexing real text would only cost time."""
    source = Source.objects.create(
        collection=collection, kind=Source.Kind.FILE, name="policy.md", status="ready"
    )
    document = Document.objects.create(source=source, title="Policy", text="", content_hash="h")
    chunks = Chunk.objects.bulk_create(
        Chunk(
            document=document,
            source=source,
            collection=collection,
            ordinal=i,
            text=text.format(i=i),
            embedding=[0.0] * 384,
        )
        for i in range(count)
    )
    return source, chunks


SECRET_TEXT = """# Salary bands

## Engineering
The confidential salary band for a senior engineer is 123456 kroner per year.
"""
SECRET_WORDS = "123456 kroner"
SECRET_QUESTION = "What is the salary band for a senior engineer?"


def hr_world(make_user):
    """An HR-only collection holding a secret passage: (admin, hr group, collection, source)."""
    admin = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    hr = Group.objects.create(name="hr")
    collection = make_collection("HR", readers=[hr])
    source = index_text(collection, "salaries.md", SECRET_TEXT, user=admin)
    return admin, hr, collection, source


# Word statistics as they must be: a recount from the chunks themselves.
RECOUNT = """
SELECT c.collection_id, l.lexeme, count(*)
FROM knowledge_chunk c, unnest(tsvector_to_array(c.search_vector)) AS l(lexeme)
GROUP BY 1, 2
UNION ALL
SELECT collection_id, '', count(*) FROM knowledge_chunk GROUP BY 1
"""


def assert_statistics_exact():
    with connection.cursor() as cursor:
        cursor.execute(RECOUNT)
        expected = {(c, lexeme): n for c, lexeme, n in cursor.fetchall()}
        cursor.execute("SELECT collection_id, lexeme, ndoc FROM knowledge_lexemestat")  # no 0 rows
        stored = {(c, lexeme): n for c, lexeme, n in cursor.fetchall()}
    assert stored == expected
    return stored
