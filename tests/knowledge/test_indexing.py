"""Indexing through a real Celery worker, real PostgreSQL + pgvector and real Redis."""

import threading
import time

import pytest
from django.db import connection, transaction

from knowledge import services
from knowledge.models import Chunk, Collection, Document, Source
from tests.support import processes
from tests.support.knowledge import make_collection

pytestmark = pytest.mark.django_db(transaction=True)

GUIDE = "# Onboarding\n\n" + "\n\n".join(
    f"## Step {i}\n\nNew colleagues complete step {i} of the onboarding checklist, which covers "
    f"topic number {i}: accounts, laptops, badges and the people to ask for help."
    for i in range(1, 9)
)


@pytest.fixture
def collection():
    return make_collection("Handbook", everyone=True)


def upload(admin, collection, name, data: bytes):
    with transaction.atomic():
        return services.source_create_from_upload(
            user=admin, collection=collection, filename=name, data=data
        )


def wait_for(source_id, statuses=("ready", "failed"), timeout=60) -> Source:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        source = Source.objects.get(pk=source_id)
        if source.status in statuses:
            return source
        time.sleep(0.1)
    raise AssertionError(f"source {source_id} stuck in {source.status} ({source.progress}%)")


def test_an_upload_is_indexed_into_chunks_with_vectors_and_full_text(
    celery_worker, admin, collection
):
    result = upload(admin, collection, "guide.md", GUIDE.encode())
    assert result.created and result.source.status == Source.Status.QUEUED

    source = wait_for(result.source.pk)

    assert source.status == Source.Status.READY, source.error
    assert source.progress == 100 and source.indexed_hash == source.content_hash
    chunks = list(Chunk.objects.filter(source=source).order_by("ordinal"))
    assert len(chunks) == source.chunk_count >= 2
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.collection_id == collection.pk and len(c.embedding) == 384 for c in chunks)
    assert all(c.heading_path[:1] == ["Onboarding"] for c in chunks)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM knowledge_chunk WHERE source_id = %s "
            "AND search_vector @@ plainto_tsquery('english', 'onboarding badges')",
            [source.pk],
        )
        assert cursor.fetchone()[0] >= 1


def test_the_same_file_twice_yields_one_source_and_one_set_of_chunks(
    celery_worker, admin, collection
):
    first = upload(admin, collection, "guide.md", GUIDE.encode())
    second = upload(admin, collection, "copy-of-guide.md", GUIDE.encode())
    assert not second.created and second.source.pk == first.source.pk
    assert "same contents" in second.message
    wait_for(first.source.pk)
    assert Source.objects.count() == 1
    assert Document.objects.count() == 1


def test_two_simultaneous_uploads_of_one_file_yield_one_source(celery_worker, admin, collection):
    results, errors = [], []

    def go():
        try:
            results.append(upload(admin, collection, "guide.md", GUIDE.encode()))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=go) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({r.source.pk for r in results}) == 1
    source = wait_for(results[0].source.pk)
    assert Source.objects.count() == 1
    assert Chunk.objects.filter(source=source).count() == source.chunk_count


def test_a_duplicated_task_never_doubles_the_chunks(celery_worker, admin, collection):
    from knowledge.tasks import index_source

    result = upload(admin, collection, "guide.md", GUIDE.encode())
    for _ in range(3):
        index_source.delay(result.source.pk)
    source = wait_for(result.source.pk)
    processes.wait_for_idle_workers()  # the duplicates have run too
    assert (
        Chunk.objects.filter(source=source).count() == Source.objects.get(pk=source.pk).chunk_count
    )


def test_changed_content_replaces_chunks_and_unchanged_content_is_skipped(
    celery_worker, admin, collection
):
    source = wait_for(upload(admin, collection, "guide.md", GUIDE.encode()).source.pk)
    first_indexed_at = source.indexed_at

    same = upload(admin, collection, "guide.md", GUIDE.encode())
    assert not same.created and "unchanged" in same.message
    assert Source.objects.get(pk=source.pk).indexed_at == first_indexed_at

    changed = upload(
        admin, collection, "guide.md", b"# Onboarding\n\nEverything moved to the new intranet."
    )
    assert changed.source.pk == source.pk
    source = wait_for(source.pk, timeout=60)
    deadline = time.monotonic() + 30
    while (
        Source.objects.get(pk=source.pk).indexed_at == first_indexed_at
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    source = wait_for(source.pk)
    texts = list(Chunk.objects.filter(source=source).values_list("text", flat=True))
    assert len(texts) == 1 and "new intranet" in texts[0]
    assert Document.objects.filter(source=source).count() == 1


def test_deleting_a_source_removes_its_chunks_and_file(celery_worker, admin, collection):
    source = wait_for(upload(admin, collection, "guide.md", GUIDE.encode()).source.pk)
    storage, name = source.file.storage, source.file.name
    assert storage.exists(name)
    services.source_delete(user=admin, source=source)
    assert not Chunk.objects.filter(source_id=source.pk).exists()
    assert not Document.objects.filter(source_id=source.pk).exists()
    assert not storage.exists(name)


def test_a_corrupt_pdf_fails_with_a_message_and_the_worker_carries_on(
    celery_worker, admin, collection
):
    broken = upload(
        admin, collection, "broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage\n%%EOF"
    )
    good = upload(admin, collection, "guide.md", GUIDE.encode())
    broken_source = wait_for(broken.source.pk)
    assert broken_source.status == Source.Status.FAILED
    assert broken_source.error and "Traceback" not in broken_source.error
    assert wait_for(good.source.pk).status == Source.Status.READY
    assert celery_worker.alive()


def test_an_empty_text_document_ends_failed_with_a_clear_state(celery_worker, admin, collection):
    result = upload(admin, collection, "blank.md", b"   \n\n   \n")
    source = wait_for(result.source.pk)
    assert source.status == Source.Status.FAILED
    assert "No text" in source.error


def test_a_collection_manager_group_may_upload_but_a_reader_may_not(celery_worker, make_user):
    from django.contrib.auth.models import Group

    editors, readers = Group.objects.create(name="editors"), Group.objects.create(name="readers")
    collection = make_collection("Team", readers=[readers], managers=[editors])
    editor, reader = make_user(), make_user()
    editor.groups.add(editors)
    reader.groups.add(readers)
    assert upload(editor, collection, "guide.md", GUIDE.encode()).created
    with pytest.raises(services.NotAllowed):
        upload(reader, collection, "other.md", b"# Other\n\ntext")
    assert Collection.objects.get(pk=collection.pk).sources.count() == 1


def test_each_chunk_keeps_the_vector_of_its_own_text_when_batches_are_sorted_by_length(
    admin, collection, settings
):
    """Batches are formed by text length, not document order: every vector must still land on
    the chunk it was computed for."""
    import numpy as np

    from knowledge import parsing
    from knowledge.chunking import chunk_document
    from knowledge.embeddings import get_embedder
    from tests.support.knowledge import index_text

    settings.EMBEDDING_BATCH_SIZE = 3
    sections = [
        f"## Part {i}\n\n" + " ".join([f"Detail about part {i}."] * (1 + (i * 7) % 23))
        for i in range(12)
    ]
    text = "# Mixed\n\n" + "\n\n".join(sections)
    source = index_text(collection, "mixed.md", text, user=admin)
    stored = {c.ordinal: np.array(c.embedding) for c in Chunk.objects.filter(source=source)}
    embedder = get_embedder()
    drafts = chunk_document(
        parsing.parse_document(text.encode(), filename="mixed.md", content_type="text/markdown"),
        target_tokens=settings.CHUNK_TARGET_TOKENS,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        count_tokens=embedder.count_tokens,
    )
    assert len(stored) == len(drafts) > 6
    expected = embedder.embed_documents([d.embed_text for d in drafts])
    for draft, vector in zip(drafts, expected, strict=True):
        assert float(np.dot(stored[draft.ordinal], vector)) > 0.9999, draft.ordinal
