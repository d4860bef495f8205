"""Reads, with access control. Every door asks these functions what a user may see.

The rule: superusers and staff may read and manage every collection; anyone else may read a
collection open to everyone, one shared with a group they belong to, or one they manage, and
may manage a collection whose manage groups include one of theirs. Missing and forbidden raise
the same ``DoesNotExist``, so ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from accounts.models import AuditEvent
from knowledge.models import BUSY_STATUSES, Chunk, Collection, KnowledgeVersion, Source


def _is_knowledge_admin(user) -> bool:
    return bool(user.is_active and (user.is_superuser or user.is_staff))


def collections_readable_by(user) -> QuerySet[Collection]:
    if user is None or not user.is_authenticated or not user.is_active:
        return Collection.objects.none()
    if _is_knowledge_admin(user):
        return Collection.objects.all()
    group_ids = user.groups.values("id")
    return Collection.objects.filter(
        Q(visibility=Collection.Visibility.EVERYONE)
        | Q(
            id__in=Collection.read_groups.through.objects.filter(group_id__in=group_ids).values(
                "collection_id"
            )
        )
        | Q(
            id__in=Collection.manage_groups.through.objects.filter(group_id__in=group_ids).values(
                "collection_id"
            )
        )
    )


def collections_manageable_by(user) -> QuerySet[Collection]:
    if user is None or not user.is_authenticated or not user.is_active:
        return Collection.objects.none()
    if _is_knowledge_admin(user):
        return Collection.objects.all()
    group_ids = user.groups.values("id")
    return Collection.objects.filter(
        id__in=Collection.manage_groups.through.objects.filter(group_id__in=group_ids).values(
            "collection_id"
        )
    )


# The rule of ``collections_readable_by`` for a non-admin, as one prepared-once statement: the
# ORM spends ~2 ms compiling that queryset, which was a quarter of a vector search's time at
# 100k chunks (docs/BENCHMARKS.md). tests/knowledge/test_access.py checks the two agree.
_READABLE_IDS_SQL = """
SELECT c.id FROM knowledge_collection c
WHERE c.visibility = %(everyone)s
   OR EXISTS (SELECT 1 FROM knowledge_collection_read_groups r
              JOIN accounts_user_groups ug ON ug.group_id = r.group_id
              WHERE r.collection_id = c.id AND ug.user_id = %(user)s)
   OR EXISTS (SELECT 1 FROM knowledge_collection_manage_groups m
              JOIN accounts_user_groups ug ON ug.group_id = m.group_id
              WHERE m.collection_id = c.id AND ug.user_id = %(user)s)
ORDER BY c.id
"""


def collections_open_to_everyone_ids() -> list[int]:
    """What a shared place (a Slack channel) may answer from: collections every signed-in person
    reads. Retrieval still narrows it to what the asker may read."""
    return list(
        Collection.objects.filter(visibility=Collection.Visibility.EVERYONE)
        .order_by("id")
        .values_list("id", flat=True)
    )


def readable_collection_ids(user) -> list[int]:
    """The ids retrieval filters on inside its SQL (a short list: collections are few)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    if _is_knowledge_admin(user):
        return list(Collection.objects.order_by("id").values_list("id", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(
            _READABLE_IDS_SQL, {"everyone": Collection.Visibility.EVERYONE, "user": user.pk}
        )
        return [row[0] for row in cursor.fetchall()]


def knowledge_versions(collection_ids) -> dict[int, int]:
    """Each collection's knowledge version (0 before anything was ever written there).

    Read before a search: an answer is then keyed with the knowledge its passages came from,
    and a change made while it is being written makes that key unreachable."""
    ids = sorted({int(c) for c in collection_ids})
    found = dict(
        KnowledgeVersion.objects.filter(collection_id__in=ids).values_list(
            "collection_id", "version"
        )
    )
    return {c: found.get(c, 0) for c in ids}


def chunks_all_readable(*, chunk_ids, collection_ids) -> bool:
    """Whether every chunk still exists inside ``collection_ids`` (the reader's scope)."""
    ids = {int(c) for c in chunk_ids}
    found = Chunk.objects.filter(pk__in=ids, collection_id__in=list(collection_ids)).count()
    return found == len(ids)


def can_manage_collection(user, collection: Collection) -> bool:
    return collections_manageable_by(user).filter(pk=collection.pk).exists()


def collection_get_readable(*, user, collection_id: int) -> Collection:
    return collections_readable_by(user).get(pk=collection_id)


def collection_get_manageable(*, user, collection_id: int) -> Collection:
    return collections_manageable_by(user).get(pk=collection_id)


def sources_readable_by(user) -> QuerySet[Source]:
    return Source.objects.filter(collection__in=collections_readable_by(user))


def source_get_readable(*, user, source_id: int) -> Source:
    return sources_readable_by(user).select_related("collection").get(pk=source_id)


def source_get_manageable(*, user, source_id: int) -> Source:
    return (
        Source.objects.filter(collection__in=collections_manageable_by(user))
        .select_related("collection")
        .get(pk=source_id)
    )


def sources_from_folder(*, collection: Collection) -> dict[str, Source]:
    """The sources ``manage.py sync`` made from a folder in ``collection``, by relative path
    (no user: the command checked that its operator manages the collection)."""
    if collection.pk is None:  # a dry run's collection that does not exist yet
        return {}
    rows = Source.objects.filter(collection=collection).exclude(folder_path="")
    return {source.folder_path: source for source in rows.select_related("collection")}


def chunks_of_source(*, user, source_id: int) -> QuerySet[Chunk]:
    source = source_get_readable(user=user, source_id=source_id)
    return Chunk.objects.filter(source=source).order_by("ordinal").defer("embedding")


def chunk_position_in_source(*, source: Source, chunk_id: int) -> int | None:
    """Where chunk ``chunk_id`` stands among ``source``'s chunks in reading order (0-based), so a
    link to a cited passage opens the page holding it; None when it is not one of them (the
    source was re-indexed since, or the id belongs elsewhere)."""
    ordinal = (
        Chunk.objects.filter(source=source, pk=chunk_id).values_list("ordinal", flat=True).first()
    )
    if ordinal is None:
        return None
    return Chunk.objects.filter(source=source, ordinal__lt=ordinal).count()


@dataclass(frozen=True)
class SourceRemoval:
    """What a reader may learn about a source that was deleted."""

    source_id: int
    name: str
    collection_name: str
    removed_at: datetime
    removed_by: str  # empty unless the reader is staff


def source_deletion_events(source_ids: Iterable[int]) -> QuerySet[AuditEvent]:
    """The audit trail's records of the deletion of these sources, oldest first (so the latest
    record of an id comes last). Their ``detail`` names the collection each was deleted from."""
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.SOURCE_DELETED,
        target_type=Source._meta.label_lower,
        target_id__in=[str(i) for i in source_ids],
    ).order_by("created_at", "id")


def source_removal_for(*, user, source_id: int) -> SourceRemoval | None:
    """The deletion of source ``source_id`` as ``user`` may see it, from the audit trail.

    Only someone who reads the collection it was deleted from (or staff) learns it was removed,
    and only staff learn who removed it. Anyone else gets None, as for an id that never existed,
    so ids cannot be probed. A source still present is not "removed" either (None).
    """
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if Source.objects.filter(pk=source_id).exists():
        return None
    event = source_deletion_events([source_id]).last()
    if event is None:
        return None
    collection = (event.detail or {}).get("collection") or {}
    staff = _is_knowledge_admin(user)
    if not staff and collection.get("id") not in readable_collection_ids(user):
        return None
    return SourceRemoval(
        source_id=source_id,
        name=str((event.detail or {}).get("name") or event.target_repr),
        collection_name=str(collection.get("name") or ""),
        removed_at=event.created_at,
        removed_by=(event.actor_email or "the system") if staff else "",
    )


def users_to_notify_about(source: Source) -> list[int]:
    """Who sees a source's progress live: its uploader only (others see it on their next load),
    and only while they may still read its collection."""
    if not source.owner_id:
        return []
    owner = source.owner  # a fresh row: active flag, staff flag and groups as they are now
    return [owner.pk] if source.collection_id in readable_collection_ids(owner) else []


# --- what the chat's empty state offers -------------------------------------------------------

EXAMPLE_QUESTIONS = 4
# Passages read per document to find its sections: the first few sections make good examples.
_EXAMPLE_PASSAGES_PER_SOURCE = 40


@dataclass(frozen=True)
class ReadableKnowledge:
    """What a person's chat can answer from, for the chat's empty state.

    ``has_documents``: at least one ready source in a collection they may read.
    ``can_add``: they may add documents (the knowledge page offers them an upload form, or,
    for staff, a new collection). ``indexing``: nothing is ready yet but something readable is
    being indexed. ``examples``: a few questions built from their readable documents' titles
    and section headings, never from anything else."""

    has_documents: bool
    can_add: bool
    indexing: bool
    examples: list[str]


def readable_knowledge_for(user) -> ReadableKnowledge:
    readable = Source.objects.filter(collection_id__in=readable_collection_ids(user))
    ready = list(
        readable.filter(status=Source.Status.READY, document__isnull=False)
        .order_by("-created_at", "-id")
        .values_list("id", "document__title")[:EXAMPLE_QUESTIONS]
    )
    can_add = bool(
        user is not None
        and user.is_authenticated
        and (user.is_staff or collections_manageable_by(user).exists())
    )
    indexing = not ready and readable.filter(status__in=BUSY_STATUSES).exists()
    return ReadableKnowledge(
        has_documents=bool(ready),
        can_add=can_add,
        indexing=indexing,
        examples=_example_questions(ready),
    )


def _example_questions(sources: list[tuple[int, str]]) -> list[str]:
    """Up to ``EXAMPLE_QUESTIONS`` questions, the newest documents first and each document's
    sections in reading order, taken in turns so that several documents show. Deterministic:
    the same knowledge always gives the same examples."""
    paths: dict[int, list[list]] = {source_id: [] for source_id, _ in sources}
    rows = (
        Chunk.objects.filter(source_id__in=paths, ordinal__lt=_EXAMPLE_PASSAGES_PER_SOURCE)
        .order_by("source_id", "ordinal")
        .values_list("source_id", "heading_path")
    )
    for source_id, path in rows:  # one query, on the (source, ordinal) unique index
        paths[source_id].append(path)
    per_document: list[list[str]] = []
    for source_id, title in sources:
        title = " ".join(title.split())
        sections: list[str] = []
        for path in paths[source_id]:
            # The deepest heading names the section; a heading equal to the title adds nothing.
            section = " ".join(str(path[-1]).split()) if path else ""
            if section and section.casefold() != title.casefold() and section not in sections:
                sections.append(section)
        if sections:
            per_document.append([_about(title, s) for s in sections])
        elif title:
            per_document.append([f"What is “{_short(title)}” about?"])
    examples: list[str] = []
    for turn in range(EXAMPLE_QUESTIONS):
        for questions in per_document:
            if turn < len(questions) and len(examples) < EXAMPLE_QUESTIONS:
                examples.append(questions[turn])
    return examples


def _about(title: str, section: str) -> str:
    if not title:
        return f"What does the knowledge say about “{_short(section)}”?"
    return f"What does “{_short(title)}” say about “{_short(section)}”?"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


SOURCE_PAGE_ORDER = ("-created_at", "-id")  # newest first; the id breaks ties of one bulk insert


def source_pages_for(
    *, user, per_page: int, paged_collection_id: int | None = None, page_number=1
) -> list[tuple[Collection, Page]]:
    """The collections ``user`` may read, each with one page of its sources (newest first):
    page ``page_number`` of ``paged_collection_id``, the first page of every other one.

    A fixed number of queries whatever the number of sources or collections: the collections
    with their source counts, every first page in one statement (a row number per collection),
    and the count and page of the one being paged through. An ingest backlog of thousands of
    queued sources then costs the page one page of rows.
    """
    collections = list(collections_readable_by(user).annotate(source_count=Count("sources")))
    first_pages: dict[int, list[Source]] = {c.pk: [] for c in collections}
    rows = (
        Source.objects.filter(collection_id__in=[c.pk for c in collections])
        .exclude(collection_id=paged_collection_id)
        .annotate(
            position=Window(
                RowNumber(),
                partition_by=[F("collection_id")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(position__lte=per_page)
        .order_by("collection_id", "position")
    )
    for source in rows:
        first_pages[source.collection_id].append(source)
    pages = []
    for collection in collections:
        paginator = Paginator(collection.sources.order_by(*SOURCE_PAGE_ORDER), per_page)
        if collection.pk == paged_collection_id:
            pages.append((collection, paginator.get_page(page_number)))
            continue
        paginator.count = collection.source_count  # known already: no COUNT query per collection
        pages.append((collection, Page(first_pages[collection.pk], 1, paginator)))
    return pages


def collection_manager_ids(collection: Collection) -> list[int]:
    """Who is told about a collection's pages: active staff and members of its manage groups."""
    users = get_user_model().objects.filter(is_active=True)
    return list(
        users.filter(
            Q(is_staff=True)
            | Q(is_superuser=True)
            | Q(groups__in=collection.manage_groups.values("id"))
        )
        .distinct()
        .values_list("pk", flat=True)
    )
