"""Writes and workflows for knowledge: adding sources, indexing them, deleting them.

Indexing is idempotent: chunks are replaced in one transaction keyed by the source and the
content hash, an advisory lock keeps two workers off the same source, and unchanged content is
never embedded twice. Events leave only after commit (``accounts.events``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePath

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.audit import Action, audit_record
from accounts.events import user_event_send
from assistant.project.tasking import enqueue_on_commit, waiting_count
from knowledge import embeddings, fetching, parsing
from knowledge.chunking import chunk_document
from knowledge.models import Chunk, Collection, Document, EmbeddingSpace, PageEdge, Source
from knowledge.parsing import furniture
from knowledge.selectors import can_manage_collection, users_to_notify_about

logger = logging.getLogger(__name__)


class KnowledgeError(Exception):
    """A refusal a person can act on; the message is shown as is."""


class NotAllowed(KnowledgeError):
    pass


class SourceBusy(Exception):
    """Another worker is indexing this source right now; try again shortly."""


class TransientIndexingError(Exception):
    """Worth retrying later: the embedding endpoint or the web page is temporarily unavailable."""


@dataclass(frozen=True)
class UploadResult:
    source: Source
    created: bool
    message: str


# --- events -------------------------------------------------------------------------------


def source_as_event(source: Source) -> dict:
    return {
        "id": source.pk,
        "collection_id": source.collection_id,
        "name": source.name,
        "kind": source.kind,
        "status": source.status,
        "progress": source.progress,
        "error": source.error,
        "chunk_count": source.chunk_count,
    }


def _notify(source: Source) -> None:
    user_event_send(
        user_ids=users_to_notify_about(source),
        event={"type": "source.updated", "source": source_as_event(source)},
    )


def _set_state(source: Source, **fields) -> None:
    for name, value in fields.items():
        setattr(source, name, value)
    source.save(update_fields=[*fields, "updated_at"])
    _notify(source)


# --- collections --------------------------------------------------------------------------


def collection_create(
    *,
    user,
    name: str,
    description: str = "",
    visibility: str = Collection.Visibility.GROUPS,
    read_group_ids=(),
    manage_group_ids=(),
) -> Collection:
    """Staff create collections; the groups decide who reads and who manages them."""
    from django.contrib.auth.models import Group

    if not (user.is_active and (user.is_staff or user.is_superuser)):
        raise NotAllowed("Only staff may create collections.")
    name = " ".join((name or "").split())[:200]
    if not name:
        raise KnowledgeError("A collection needs a name.")
    if visibility not in Collection.Visibility.values:
        raise KnowledgeError("Visibility must be 'everyone' or 'groups'.")
    read_groups = list(Group.objects.filter(pk__in=list(read_group_ids)))
    manage_groups = list(Group.objects.filter(pk__in=list(manage_group_ids)))
    try:
        with transaction.atomic():
            collection = Collection.objects.create(
                name=name,
                description=description.strip()[:5000],
                visibility=visibility,
                created_by=user,
            )
            collection.read_groups.set(read_groups)
            collection.manage_groups.set(manage_groups)
            collection_access_record(user=user, collection=collection, before=None)
    except IntegrityError:
        raise KnowledgeError(f"A collection named {name!r} already exists.") from None
    return collection


def collection_get_or_create(*, user, name: str, visibility: str) -> tuple[Collection, bool]:
    """The collection called ``name``, created by ``user`` (with :func:`collection_create`'s
    rules and audit record) when there is none yet; ``(collection, created)``."""
    clean = " ".join((name or "").split())[:200]
    existing = Collection.objects.filter(name=clean).first()
    if existing is not None:
        return existing, False
    try:
        return collection_create(user=user, name=clean, visibility=visibility), True
    except KnowledgeError:
        existing = Collection.objects.filter(name=clean).first()  # made meanwhile
        if existing is None:
            raise
        return existing, False


def collection_access(collection: Collection) -> dict:
    """Who may read and manage a collection, as stored now: the audit trail's before/after."""
    return {
        "visibility": Collection.objects.filter(pk=collection.pk)
        .values_list("visibility", flat=True)
        .first(),
        "read_groups": _group_names(collection.read_groups),
        "manage_groups": _group_names(collection.manage_groups),
    }


def _group_names(manager) -> list[str]:
    return sorted(manager.values_list("name", flat=True))


def collection_access_record(*, user, collection: Collection, before: dict | None) -> None:
    """Audits a change of who may read or manage ``collection`` (``before`` from
    ``collection_access`` taken earlier in the same transaction; ``None`` for a new collection).

    Every door that edits a collection (the knowledge pages, the admin) calls this after writing,
    so the trail reads the same whichever one was used; nothing is recorded when access did not
    change (a renamed collection, say).
    """
    after = collection_access(collection)
    if after == before:
        return
    audit_record(
        actor=user,
        action=Action.COLLECTION_ACCESS_CHANGED,
        target=collection,
        detail={"collection_id": collection.pk, "before": before, "after": after},
    )


def collection_delete(*, user, collection: Collection) -> None:
    """Deletes a collection with its sources, documents and chunks and, after commit, files."""
    _check_manage(user, collection)
    with transaction.atomic():
        sources = Source.objects.filter(collection=collection)
        names = [name for name in sources.values_list("file", flat=True) if name]
        audit_record(
            actor=user,
            action=Action.COLLECTION_DELETED,
            target=collection,
            detail={
                "collection_id": collection.pk,
                "name": collection.name,
                "sources": sources.count(),
                "access": collection_access(collection),
            },
        )
        collection.delete()
        storage = Source._meta.get_field("file").storage
        transaction.on_commit(lambda: _delete_files(storage, names))


def _delete_files(storage, names: list[str]) -> None:
    for name in names:
        storage.delete(name)


# --- adding sources -----------------------------------------------------------------------


def _enqueue_index(source: Source) -> None:
    enqueue_on_commit("knowledge.index_source", source.pk)


def _check_manage(user, collection: Collection) -> None:
    if not can_manage_collection(user, collection):
        raise NotAllowed("You may not change this collection.")


def _clean_name(filename: str) -> str:
    # Only the last path component, without control characters: it is shown, never used as a path.
    name = PurePath(filename.replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return (name or "upload")[:300]


def source_create_from_upload(
    *, user, collection: Collection, filename: str, data: bytes, content_type: str | None = None
) -> UploadResult:
    """Stores an uploaded file and queues it for indexing.

    Same name in the same collection: the file is replaced (and re-indexed only when its bytes
    changed). Same bytes under another name: refused as a duplicate, pointing at the original.
    """
    _check_manage(user, collection)
    limit = settings.KNOWLEDGE_MAX_UPLOAD_BYTES
    if len(data) > limit:
        raise KnowledgeError(
            f"{_clean_name(filename)} is {len(data) / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB."
        )
    if not data:
        raise KnowledgeError(f"{_clean_name(filename)} is empty.")
    name = _clean_name(filename)
    try:
        kind = parsing.detect_kind(data, filename=name, content_type=content_type)
    except parsing.ParseError as exc:
        raise KnowledgeError(f"{name}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        with transaction.atomic():
            return _store_upload(user, collection, name, data, digest, kind)
    except IntegrityError:
        # A concurrent upload of the same file won the race: report what is there now.
        existing = (
            Source.objects.filter(collection=collection)
            .filter(Q(name=name) | Q(kind=Source.Kind.FILE, content_hash=digest))
            .first()
        )
        if existing is None:
            raise
        return UploadResult(existing, False, f"{name} is already in {collection.name}.")


def _store_upload(user, collection, name, data, digest, kind) -> UploadResult:
    same_bytes = (
        Source.objects.select_for_update()
        .filter(collection=collection, kind=Source.Kind.FILE, content_hash=digest)
        .first()
    )
    if same_bytes is not None:
        message = (
            f"{name} is unchanged."
            if same_bytes.name == name
            else f"{name} has the same contents as {same_bytes.name}, which is already in {collection.name}."
        )
        return UploadResult(same_bytes, False, message)
    existing = Source.objects.select_for_update().filter(collection=collection, name=name).first()
    source = existing or Source(collection=collection, name=name, kind=Source.Kind.FILE)
    if existing is not None and existing.kind != Source.Kind.FILE:
        raise KnowledgeError(f"{name} already names a web page in {collection.name}.")
    old_file = existing.file.name if existing is not None and existing.file else None
    source.owner = user
    source.content_type = kind
    source.size = len(data)
    source.content_hash = digest
    source.status, source.progress, source.error = Source.Status.QUEUED, 0, ""
    source.file.save(name, ContentFile(data), save=False)
    source.save()
    if old_file:
        storage = source.file.storage
        transaction.on_commit(lambda: storage.delete(old_file))
    _notify(source)
    _enqueue_index(source)
    verb = "replaced; re-indexing" if existing else "added; indexing"
    return UploadResult(source, existing is None, f"{name} {verb}.")


def source_create_from_folder(
    *, user, collection: Collection, path: str, data: bytes
) -> UploadResult:
    """Adds or replaces the source mirroring the file at ``path`` (relative to a folder that
    ``manage.py sync`` mirrors into ``collection``; see ``knowledge.folder_sync``).

    The upload's own checks and store, so the same limits, duplicate rule and indexing task
    apply; only the name differs: the whole relative path, so two ``readme.md`` in two
    sub-folders stay two sources. ``folder_path`` marks the source as the folder's, and only a
    source this function created gets it: a sync deletes a source whose file left the folder,
    so it must never take over one added by hand. A source of the same name that is not this
    file's (uploaded in the browser) is returned untouched, with a message saying so; so is a
    source holding the same bytes, with the upload's message. ``folder_path`` is set on
    neither.
    """
    _check_manage(user, collection)
    name = _clean_folder_path(path)
    limit = settings.KNOWLEDGE_MAX_UPLOAD_BYTES
    if len(data) > limit:
        raise KnowledgeError(
            f"{name} is {len(data) / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB."
        )
    if not data:
        raise KnowledgeError(f"{name} is empty.")
    try:
        kind = parsing.detect_kind(data, filename=name)
    except parsing.ParseError as exc:
        raise KnowledgeError(f"{name}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        with transaction.atomic():
            taken = (
                Source.objects.select_for_update()
                .filter(collection=collection, name=name)
                .exclude(folder_path=name)
                .first()
            )
            if taken is not None:
                return UploadResult(
                    taken,
                    False,
                    f"{name} already names a source added by hand to {collection.name}; the "
                    "folder's file is left out (rename one of them to sync it).",
                )
            result = _store_upload(user, collection, name, data, digest, kind)
            if result.created:
                Source.objects.filter(pk=result.source.pk).update(folder_path=name)
                result.source.folder_path = name
            return result
    except IntegrityError:
        # A browser upload of the same name or bytes won a race (or a folder source was
        # renamed by hand and still holds this path): report what is there now.
        existing = (
            Source.objects.filter(collection=collection)
            .filter(
                Q(name=name) | Q(folder_path=name) | Q(kind=Source.Kind.FILE, content_hash=digest)
            )
            .first()
        )
        if existing is None:
            raise
        return UploadResult(existing, False, f"{name} is already in {collection.name}.")


def source_rename_in_folder(*, user, source: Source, path: str) -> Source:
    """Gives a folder source its file's new path: the file was renamed or moved within the
    folder (``knowledge.folder_sync`` recognised its bytes). Its passages, and the citations
    pointing at them, stay; nothing is embedded again."""
    _check_manage(user, source.collection)
    name = _clean_folder_path(path)
    try:
        with transaction.atomic():
            renamed = Source.objects.filter(pk=source.pk).update(
                name=name, folder_path=name, updated_at=timezone.now()
            )
            if not renamed:
                raise KnowledgeError(f"The source for {source.folder_path} no longer exists.")
            source.refresh_from_db()
            _notify(source)
    except IntegrityError:
        raise KnowledgeError(
            f"{name} already names another source in {source.collection.name}."
        ) from None
    return source


def _clean_folder_path(path: str) -> str:
    """A relative POSIX path of printable parts, no ``..``: it is shown and compared, and
    refused rather than repaired, since a repaired path would name another file."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or not all(ch.isprintable() for ch in path)
    ):
        raise KnowledgeError(f"{path!r} is not a file path inside the folder.")
    if len(path) > Source._meta.get_field("folder_path").max_length:
        raise KnowledgeError(f"{path[:60]}… is a path longer than 300 characters.")
    return path


def source_create_from_url(*, user, collection: Collection, url: str) -> UploadResult:
    _check_manage(user, collection)
    try:
        fetching.validate_url_syntax(url)
    except fetching.FetchError as exc:
        raise KnowledgeError(str(exc)) from None
    with transaction.atomic():
        existing = (
            Source.objects.select_for_update().filter(collection=collection, name=url).first()
        )
        if existing is not None:
            return UploadResult(existing, False, f"{url} is already in {collection.name}.")
        source = Source.objects.create(
            collection=collection, owner=user, kind=Source.Kind.URL, name=url[:300], url=url
        )
        _notify(source)
        _enqueue_index(source)
    return UploadResult(source, True, f"{url} added; fetching.")


def source_reindex(*, user, source: Source, force: bool = True) -> None:
    _check_manage(user, source.collection)
    with transaction.atomic():
        if force:
            Source.objects.filter(pk=source.pk).update(indexed_hash="")
        source.refresh_from_db()
        _set_state(source, status=Source.Status.QUEUED, progress=0, error="")
        _enqueue_index(source)


def source_move(*, user, source: Source, collection: Collection) -> bool:
    """Moves a source (and, by the database's cascade, its chunks) to another collection.

    The user must manage both collections. The old collection is read from the locked row, not
    from ``source`` (a form may already have set the new one on it). Returns whether it moved.
    Runs in the caller's transaction when there is one (the admin saves the rest of the form).
    """
    with transaction.atomic():
        locked = Source.objects.select_for_update().filter(pk=source.pk).first()
        if locked is None:
            raise KnowledgeError("This source no longer exists.")
        old = Collection.objects.get(pk=locked.collection_id)
        if old.pk == collection.pk:
            return False
        _check_manage(user, old)
        _check_manage(user, collection)
        try:
            with transaction.atomic():
                Source.objects.filter(pk=locked.pk).update(
                    collection=collection, updated_at=timezone.now()
                )
        except IntegrityError:
            raise KnowledgeError(
                f"{collection.name} already holds a source named {locked.name!r} or with the "
                "same contents."
            ) from None
        source.collection = collection
        locked.refresh_from_db()
        _notify(locked)  # the uploader's page moves it, if they may read where it went
        audit_record(
            actor=user,
            action=Action.SOURCE_MOVED,
            target=locked,
            detail={
                "from": {"id": old.pk, "name": old.name},
                "to": {"id": collection.pk, "name": collection.name},
            },
        )
    return True


def source_delete(*, user, source: Source) -> None:
    """Deletes the source, its document and chunks (cascade) and, after commit, its file."""
    _check_manage(user, source.collection)
    source_delete_for_site(actor=user, source=source)


def source_delete_for_site(*, actor, source: Source) -> None:
    """:func:`source_delete` without the manage check, for an operator's command acting for the
    site (``actor`` may be ``None``: no account), such as erasing a person with their sources.
    Audited the same way, so citations of it still say where it was."""
    user = actor
    file_name = source.file.name if source.file else None
    storage = source.file.storage
    source_id, collection_id = source.pk, source.collection_id
    owner_id = (users_to_notify_about(source) or [None])[0]
    title = Document.objects.filter(source=source).values_list("title", flat=True).first()
    with transaction.atomic():
        # Also what the source's page says afterwards (``selectors.source_removal_for``): a
        # citation may still point here, and its reader should learn the source was removed.
        audit_record(
            actor=user,
            action=Action.SOURCE_DELETED,
            target=source,
            detail={
                "collection": {"id": collection_id, "name": source.collection.name},
                "name": source.name,
                "title": title or "",
                "kind": source.kind,
                "chunks": source.chunk_count,
            },
        )
        source.delete()
        if file_name:
            transaction.on_commit(lambda: storage.delete(file_name))
        if owner_id:
            user_event_send(
                user_ids=owner_id,
                event={
                    "type": "source.deleted",
                    "source": {"id": source_id, "collection_id": collection_id},
                },
            )


# --- indexing -----------------------------------------------------------------------------


def _try_lock(source_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, source_id])
        return cursor.fetchone()[0]


def _unlock(source_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, source_id])


LOCK_NAMESPACE = 7301  # advisory-lock namespace for "indexing source N"


def source_index(*, source_id: int, content: tuple[bytes, str, str | None] | None = None) -> None:
    """Brings a source's chunks in line with its current content. Safe to run twice.

    Raises ``SourceBusy`` when another worker holds the source, ``TransientIndexingError`` when
    a retry later may succeed; permanent problems end in status ``failed`` with a message.
    ``content`` (data, file name, content type): bytes the caller already fetched (a web
    page's scheduled check, ``knowledge.syncing``), so the page is not fetched twice.
    """
    if not _try_lock(source_id):
        raise SourceBusy(source_id)
    try:
        source = Source.objects.select_related("collection").filter(pk=source_id).first()
        if source is None:  # deleted while queued: nothing to do
            return
        _index_locked(source, content)
    finally:
        _unlock(source_id)


def _index_locked(source: Source, content: tuple[bytes, str, str | None] | None = None) -> None:
    embedder = embeddings.get_embedder()
    _ensure_embedding_space(embedder)
    _set_state(source, status=Source.Status.PARSING, progress=5, error="")
    try:
        data, filename, content_type = content or _read_content(source)
    except fetching.FetchError as exc:
        if getattr(exc, "transient", False):
            raise TransientIndexingError(str(exc)) from exc
        _fail(source, str(exc))
        return
    digest = hashlib.sha256(data).hexdigest()
    if (
        digest == source.indexed_hash
        and source.embedding_model == embedder.name
        and source.chunks.exists()
        and not _furniture_stale(source.collection_id, [source.pk])[0]
    ):
        _set_state(source, status=Source.Status.READY, progress=100, content_hash=digest)
        return
    try:
        doc = parsing.parse_document(data, filename=filename, content_type=content_type)
    except parsing.ParseError as exc:
        _fail(source, str(exc))
        return
    edges: list[furniture.Edge] = []
    repeated: set[int] = set()
    if parsing.detect_kind(data, filename=filename, content_type=content_type) == "html":
        doc, edges, repeated = _without_site_furniture(source, doc)
    drafts = chunk_document(
        doc,
        target_tokens=settings.CHUNK_TARGET_TOKENS,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        count_tokens=embedder.count_tokens,
    )
    if not drafts:
        message = (
            "No text was found in this document (a scanned PDF without a text layer?)."
            if doc.metadata.get("pages")
            else "No text was found in this document."
        )
        _fail(source, message)
        return
    vectors = _embed_with_progress(source, embedder, [d.embed_text for d in drafts])
    _write_chunks(source, doc, drafts, vectors, digest, embedder.name, (edges, repeated))


def fetch_page(url: str, **options) -> fetching.FetchedPage:
    """``fetching.fetch_url`` under the site's settings (time, size, the addresses allowed):
    every fetch of a web page or a sitemap goes through here. ``options``: the fetch's own
    (validators for a conditional request, the content types wanted)."""
    return fetching.fetch_url(
        url,
        timeout=settings.URL_FETCH_TIMEOUT,
        max_bytes=settings.URL_FETCH_MAX_BYTES,
        allowed_hosts=settings.URL_FETCH_ALLOWED_HOSTS,
        allowed_networks=settings.URL_FETCH_ALLOWED_NETWORKS,
        **options,
    )


def page_file_name(page: fetching.FetchedPage) -> str:
    """The name a fetched page is parsed under (its path's last part; a site's root is HTML)."""
    return PurePath(page.url.split("?")[0]).name or "index.html"


def _read_content(source: Source) -> tuple[bytes, str, str | None]:
    if source.kind == Source.Kind.URL:
        page = fetch_page(source.url)
        return page.data, page_file_name(page), page.content_type
    with source.file.open("rb") as handle:
        return handle.read(), source.name, source.content_type or None


def _embed_with_progress(source, embedder, texts: list[str]) -> list[list[float]]:
    _set_state(source, status=Source.Status.EMBEDDING, progress=10)
    vectors: list[list[float]] = [[] for _ in texts]
    batch = settings.EMBEDDING_BATCH_SIZE
    # Texts of similar length share a batch: less padding, ~5% more model throughput
    # (docs/BENCHMARKS.md). The vectors go back in the texts' order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    done = 0
    last_event = time.monotonic()
    for start in range(0, len(order), batch):
        indices = order[start : start + batch]
        try:
            batch_vectors = embedder.embed_documents([texts[i] for i in indices])
        except embeddings.TransientEmbeddingError as exc:
            raise TransientIndexingError(str(exc)) from exc
        for index, vector in zip(indices, batch_vectors, strict=True):
            vectors[index] = vector
        done += len(indices)
        if time.monotonic() - last_event > 0.5 or done == len(texts):
            _set_state(source, progress=10 + int(85 * done / len(texts)))
            last_event = time.monotonic()
    return vectors


def _write_chunks(source, doc, drafts, vectors, digest: str, model_name: str, edges) -> None:
    with transaction.atomic():
        locked = Source.objects.select_for_update().filter(pk=source.pk).first()
        if locked is None:  # deleted while we worked
            return
        _record_edges(locked, *edges)
        # Moved while we worked: the chunks must carry its collection as it is now (the
        # database refuses any other), read under the row lock that keeps it there.
        source.collection_id = locked.collection_id
        Document.objects.filter(source=source).delete()  # cascades to the old chunks
        document = Document.objects.create(
            source=source,
            title=doc.title[:500] or source.name,
            text=doc.text,
            metadata=doc.metadata,
            content_hash=digest,
        )
        Chunk.objects.bulk_create(
            [
                Chunk(
                    document=document,
                    source=source,
                    collection_id=source.collection_id,
                    ordinal=draft.ordinal,
                    text=draft.text,
                    heading_path=list(draft.heading_path),
                    page=draft.page,
                    token_count=draft.token_count,
                    context=" › ".join([document.title, *draft.heading_path]),
                    embedding=vector,
                )
                for draft, vector in zip(drafts, vectors, strict=True)
            ],
            batch_size=500,
        )
        _set_state(
            source,
            status=Source.Status.READY,
            progress=100,
            error="",
            chunk_count=len(drafts),
            indexed_hash=digest,
            content_hash=digest,
            embedding_model=model_name,
            indexed_at=timezone.now(),
        )


# --- site furniture: lines repeated at the edges of a collection's pages -------------------


def _without_site_furniture(
    source: Source, doc: parsing.ParsedDocument
) -> tuple[parsing.ParsedDocument, list[furniture.Edge], set[int]]:
    """The page without the lines its collection's other pages show at their edges too.

    Decided on the counts as they are now (this page included); a page indexed before its
    site's footer was known to repeat is indexed again when it is (``_record_edges``).
    """
    edges = furniture.page_edges(doc)
    fingerprints = {edge.fingerprint for edge in edges if edge.fingerprint is not None}
    others = PageEdge.objects.filter(source__collection_id=source.collection_id).exclude(
        source_id=source.pk
    )
    counts = dict(
        others.filter(fingerprint__in=fingerprints)
        .values_list("fingerprint")
        .annotate(pages=Count("source_id", distinct=True))
    )
    pages = others.values("source_id").distinct().count() + 1
    repeated = furniture.repeated(
        {fingerprint: counts.get(fingerprint, 0) + 1 for fingerprint in fingerprints}, pages
    )
    return furniture.without_furniture(doc, furniture.furniture(edges, repeated)), edges, repeated


# How many pages of the collection offer each of its edge lines, and how many pages it has.
EDGE_COUNTS = """
SELECT e.source_id, e.position, e.fingerprint, e.content, e.repeated, n.pages
FROM knowledge_pageedge e
JOIN knowledge_source s ON s.id = e.source_id
LEFT JOIN (
    SELECT e2.fingerprint, count(DISTINCT e2.source_id) AS pages
    FROM knowledge_pageedge e2 JOIN knowledge_source s2 ON s2.id = e2.source_id
    WHERE s2.collection_id = %(collection)s AND e2.fingerprint IS NOT NULL
    GROUP BY e2.fingerprint
) n ON n.fingerprint = e.fingerprint
WHERE s.collection_id = %(collection)s AND (%(all)s OR e.source_id = ANY(%(sources)s))
"""
EDGE_PAGES = """
SELECT count(DISTINCT e.source_id) FROM knowledge_pageedge e
JOIN knowledge_source s ON s.id = e.source_id WHERE s.collection_id = %s
"""


def _furniture_stale(
    collection_id: int, source_ids: list[int] | None
) -> tuple[set[int], dict[int, set[int]]]:
    """Among ``source_ids`` (None: the whole collection), the pages whose chunks left out other
    lines than the counts now say, and the pages whose records only need the counts' new
    repeated fingerprints (their chunks stay the same)."""
    with connection.cursor() as cursor:
        cursor.execute(EDGE_PAGES, [collection_id])
        floor = furniture.min_pages(cursor.fetchone()[0])
        cursor.execute(
            EDGE_COUNTS,
            {"collection": collection_id, "all": source_ids is None, "sources": source_ids or []},
        )
        rows = cursor.fetchall()
    pages: dict[int, list] = {}
    for source_id, *row in rows:
        pages.setdefault(source_id, []).append(row)
    stale: set[int] = set()
    refresh: dict[int, set[int]] = {}
    for source_id, edges in pages.items():
        now = {fp for _, fp, _, _, count in edges if fp is not None and (count or 0) >= floor}
        then = {fp for _, fp, _, was, _ in edges if was}
        if now == then:
            continue
        page = [furniture.Edge(position, fp, content) for position, fp, content, _, _ in edges]
        if furniture.furniture(page, now) != furniture.furniture(page, then):
            stale.add(source_id)
        else:
            refresh[source_id] = now
    return stale, refresh


def _record_edges(source: Source, edges: list[furniture.Edge], repeated: set[int]) -> None:
    """Stores the page's edges with the decision its chunks were made with, then queues the
    collection's pages whose chunks that decision (or any count since) has made out of date.

    Runs in the chunks' transaction, under the collection's advisory lock (the one the chunk
    triggers take), so two pages of one site never count at the same time.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(7302, %s)", [source.collection_id])
    PageEdge.objects.filter(source=source).delete()
    PageEdge.objects.bulk_create(
        [
            PageEdge(
                source=source,
                position=edge.position,
                fingerprint=edge.fingerprint,
                content=edge.content,
                repeated=edge.fingerprint in repeated,
            )
            for edge in edges
        ]
    )
    if (
        not edges
        and not PageEdge.objects.filter(source__collection_id=source.collection_id).exists()
    ):
        return  # no HTML page in the collection: nothing to count
    stale, refresh = _furniture_stale(source.collection_id, None)
    for source_id, now in refresh.items():
        _refresh_edges(source_id, now)
    # Only ready pages go back in line. A page another worker is writing right now is skipped,
    # not waited for (it holds its row and waits for the collection's lock, which this
    # transaction holds): its own write runs this same check after this one. A queued or busy
    # page will be indexed anyway, and a failed one is retried by a person, not by every later
    # page of its site.
    others = Source.objects.select_for_update(skip_locked=True).filter(
        pk__in=stale, status=Source.Status.READY
    )
    for other in others.exclude(pk=source.pk):
        _set_state(other, status=Source.Status.QUEUED, progress=0)
        _enqueue_index(other)
    if source.pk in stale:  # the counts moved while this page was embedded: once more
        _enqueue_index(source)


def _refresh_edges(source_id: int, repeated: set[int]) -> None:
    """Brings a page's ``repeated`` flags up to the counts when its chunks stay the same."""
    edges = PageEdge.objects.filter(source_id=source_id)
    edges.filter(fingerprint__in=repeated).update(repeated=True)
    edges.exclude(fingerprint__in=repeated).update(repeated=False)


def _fail(source: Source, message: str) -> None:
    logger.info("indexing failed", extra={"source_id": source.pk, "reason": message})
    _set_state(source, status=Source.Status.FAILED, error=message[:2000], progress=0)


def source_mark_failed(*, source_id: int, message: str) -> None:
    source = Source.objects.filter(pk=source_id).first()
    if source is not None:
        _fail(source, message)


def _ensure_embedding_space(embedder) -> None:
    space = EmbeddingSpace.objects.first()
    if space is None:
        EmbeddingSpace.objects.create(name=embedder.name, dimensions=embedder.dimensions)
        return
    if space.name != embedder.name:
        raise embeddings.EmbeddingError(
            f"The index holds vectors from {space.name} but the configured model is "
            f"{embedder.name}; run `python manage.py reindex` to move everything to the new model."
        )


# --- re-indexing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReindexResult:
    source_ids: list[int]
    embedder_name: str
    # (receiver module, count) for other vectors re-embedded after a model switch (memory).
    others_reembedded: list[tuple[str, int]]


def sources_reindex(*, collection_name: str | None = None, enqueue: bool = True) -> ReindexResult:
    """Queues every source (or one collection's) for re-indexing with the configured model.

    When the configured embedding model differs from the stored vectors', every chunk is
    deleted and the vector column resized to the new model first (a switch covers every
    collection, so ``collection_name`` is then refused). ``enqueue=False`` leaves running the
    indexing to the caller (``reindex --inline``). Raises :class:`KnowledgeError`."""
    embedder = embeddings.get_embedder()
    space = EmbeddingSpace.objects.first()
    switching = space is not None and space.name != embedder.name
    sources = Source.objects.all()
    if collection_name:
        if switching:
            raise KnowledgeError(
                f"The embedding model changed ({space.name} -> {embedder.name}): "
                "every collection must be re-indexed; run without --collection."
            )
        if not Collection.objects.filter(name=collection_name).exists():
            raise KnowledgeError(f"No collection named {collection_name!r}.")
        sources = sources.filter(collection__name=collection_name)
    others: list[tuple[str, int]] = []
    with transaction.atomic():
        if switching:
            others = _embedding_space_switch(space, embedder)
        ids = list(sources.values_list("pk", flat=True))
        Source.objects.filter(pk__in=ids).update(
            indexed_hash="", status=Source.Status.QUEUED, progress=0
        )
        if enqueue:
            for pk in ids:
                enqueue_on_commit("knowledge.index_source", pk)
    return ReindexResult(source_ids=ids, embedder_name=embedder.name, others_reembedded=others)


def _embedding_space_switch(space: EmbeddingSpace, embedder) -> list[tuple[str, int]]:
    """Drops the old model's vectors and resizes the column (and its HNSW index) if needed."""
    from knowledge.signals import embedding_model_changed

    Chunk.objects.all().delete()  # old vectors are meaningless under the new model
    if embedder.dimensions != space.dimensions:
        with connection.cursor() as cursor:
            # The deletes above left deferred foreign-key checks queued (citations point at
            # chunks); PostgreSQL refuses ALTER TABLE while they are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("DROP INDEX IF EXISTS chunk_embedding_hnsw")
            cursor.execute(
                "ALTER TABLE knowledge_chunk ALTER COLUMN embedding "
                f"TYPE vector({int(embedder.dimensions)})"
            )
            cursor.execute(
                "CREATE INDEX chunk_embedding_hnsw ON knowledge_chunk "
                "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
    old_name, old_dimensions = space.name, space.dimensions
    space.name, space.dimensions = embedder.name, embedder.dimensions
    space.save()
    return [
        (receiver.__module__, count)
        for receiver, count in embedding_model_changed.send(
            sender=EmbeddingSpace,
            embedder=embedder,
            old_name=old_name,
            old_dimensions=old_dimensions,
        )
    ]


# --- work the broker lost ---------------------------------------------------------------


def sources_requeue_stuck(*, older_than_seconds: float, limit: int = 500) -> list[int]:
    """Queues again the sources still ``queued`` for longer than ``older_than_seconds`` while
    the ingest queue is empty: their task was lost (the broker was down when they were saved,
    or restarted without persistence). Returns their ids.

    Only with an empty queue, so sources waiting their turn behind a long backlog are not
    queued twice; and each one is claimed (its ``updated_at`` renewed, rows locked by another
    worker's sweep skipped), so several workers sweeping at once queue it once. A task that
    was not lost after all runs twice, which indexing allows (it is idempotent)."""
    if waiting_count("knowledge.index_source"):
        return []
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    with transaction.atomic():
        ids = list(
            Source.objects.select_for_update(skip_locked=True)
            .filter(status=Source.Status.QUEUED, updated_at__lt=cutoff)
            .order_by("updated_at")
            .values_list("pk", flat=True)[:limit]
        )
        Source.objects.filter(pk__in=ids).update(updated_at=timezone.now())
        for pk in ids:
            enqueue_on_commit("knowledge.index_source", pk)
    if ids:
        logger.warning("re-queued sources whose task was lost", extra={"source_ids": ids})
    return ids
