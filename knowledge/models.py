"""Collections of knowledge, their sources, the documents extracted from them and their chunks."""

from __future__ import annotations

import uuid
from pathlib import PurePath

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIMENSIONS = 384  # the column's size; changing model means `manage.py reindex`


class Collection(models.Model):
    """A set of sources with one access rule: who may read it and who may manage it."""

    class Visibility(models.TextChoices):
        EVERYONE = "everyone", "Everyone signed in"
        GROUPS = "groups", "Only the chosen groups"

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.GROUPS
    )
    read_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="readable_collections",
        help_text="With 'only the chosen groups': members of these groups may read.",
    )
    manage_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="managed_collections",
        help_text="Members of these groups (and staff) may add, re-index and delete sources.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    refresh_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="How often its web pages and sitemaps are checked for changes, in hours: "
        "0 never; empty: the site's default (URL_REFRESH_HOURS).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def refresh_every_hours(self) -> int:
        """How often its web pages and sitemaps are checked: its own setting, else the site's
        (0: never). The scheduler's SQL reads the same two, in the same order."""
        return settings.URL_REFRESH_HOURS if self.refresh_hours is None else self.refresh_hours


def source_upload_to(instance: Source, filename: str) -> str:
    # Never trust the client's file name on disk: keep only the extension.
    suffix = PurePath(filename).suffix.lower()[:10]
    return f"sources/{uuid.uuid4().hex}{suffix}"


class Source(models.Model):
    """An uploaded file or a web page, and the state of its indexing."""

    class Kind(models.TextChoices):
        FILE = "file", "File"
        URL = "url", "Web page"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PARSING = "parsing", "Parsing"
        EMBEDDING = "embedding", "Embedding"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="sources")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="knowledge_sources",
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=300, help_text="The original file name or the URL.")
    url = models.URLField(max_length=2000, blank=True)
    file = models.FileField(upload_to=source_upload_to, blank=True, max_length=300)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    indexed_hash = models.CharField(
        max_length=64, blank=True, help_text="The content hash the current chunks were made from."
    )
    embedding_model = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    # Keeping a web page in sync (knowledge.syncing): how often, what the server said last time
    # (its validators, sent back in a conditional request), when it was checked and changed.
    refresh_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="How often this web page is checked for changes, in hours: 0 never; "
        "empty: its collection's setting.",
    )
    etag = models.CharField(max_length=300, blank=True)
    last_modified = models.CharField(max_length=300, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_changed_at = models.DateTimeField(null=True, blank=True)
    # A claim by the scheduler: the check is queued; due again at this time if it never ran.
    check_claimed_until = models.DateTimeField(null=True, blank=True)
    # Consecutive checks that found the page gone (404/410); ``gone_at`` once it counts as gone.
    missing_count = models.PositiveSmallIntegerField(default=0)
    gone_at = models.DateTimeField(null=True, blank=True)
    # Why it counts as gone: "missing" (404/410; still checked, so it can come back) or
    # "unlisted" (its sitemap stopped listing it; not checked until it is listed again).
    gone_reason = models.CharField(max_length=16, blank=True)
    sitemap = models.ForeignKey(
        "Sitemap",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pages",
        help_text="The sitemap that listed this page, if it came from one.",
    )
    # Set only by ``manage.py sync`` (knowledge.folder_sync): the file's path relative to the
    # synced folder, which marks the source as the folder's to replace and remove. The file's
    # hash is ``content_hash``, so an unchanged file is recognised without re-embedding.
    folder_path = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "name"], name="source_unique_name"),
            models.UniqueConstraint(
                fields=["collection", "content_hash"],
                condition=models.Q(kind="file") & ~models.Q(content_hash=""),
                name="source_unique_file_content",
            ),
            # The target of the chunks' (source, collection) foreign key: see ``Chunk``.
            models.UniqueConstraint(fields=["id", "collection"], name="source_id_collection"),
            # One source per file of a synced folder, whatever happens to the names.
            models.UniqueConstraint(
                fields=["collection", "folder_path"],
                condition=~models.Q(folder_path=""),
                name="source_unique_folder_path",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_busy(self) -> bool:
        return self.status in BUSY_STATUSES

    @property
    def checked_at(self):
        """When its content was last compared with the original (a first indexing counts)."""
        return self.last_checked_at or self.indexed_at

    @property
    def changed_at(self):
        """When its content last changed (a first indexing counts)."""
        return self.last_changed_at or self.indexed_at


# Being indexed (or waiting to be): a source in one of these is not to be touched again yet.
BUSY_STATUSES = (Source.Status.QUEUED, Source.Status.PARSING, Source.Status.EMBEDDING)


class Sitemap(models.Model):
    """A site's sitemap.xml added to a collection: each page it lists becomes a web-page source
    (``Source.sitemap``), within ``SITEMAP_MAX_PAGES``. Checked again on the refresh schedule:
    newly listed pages are added, pages no longer listed are marked."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="sitemaps")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    url = models.URLField(max_length=2000)
    refresh_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="How often the sitemap is read again, in hours: 0 never; empty: its "
        "collection's setting.",
    )
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_changed_at = models.DateTimeField(null=True, blank=True)
    check_claimed_until = models.DateTimeField(null=True, blank=True)
    # What the last reading found: pages listed, added, refused (with why), no longer listed.
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "url"], name="sitemap_unique_url")
        ]

    def __str__(self) -> str:
        return self.url


class Document(models.Model):
    """The text extracted from a source (one per source)."""

    source = models.OneToOneField(Source, on_delete=models.CASCADE, related_name="document")
    title = models.CharField(max_length=500)
    text = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # The target of the chunks' (document, source) foreign key: see ``Chunk``.
            models.UniqueConstraint(fields=["id", "source"], name="document_id_source"),
        ]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A passage: what retrieval finds and citations point at.

    ``collection`` and ``source`` are copied from the document so that the access filter
    runs inside the index query. ``search_vector`` is a generated tsvector column added by a
    migration (title and headings weighted above the body), indexed with GIN.

    The database keeps the copies true on every write path (migration 0006): composite foreign
    keys (source, collection) -> Source (id, collection) with ON UPDATE CASCADE and
    (document, source) -> Document (id, source). A chunk cannot be written with another
    collection than its source's, and moving a source (admin, ORM ``save()`` or ``update()``,
    raw SQL) moves its chunks in the same statement, which fires the lexeme-statistics
    triggers. Django cannot express composite foreign keys, so they live only in SQL.
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="chunks")
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    heading_path = models.JSONField(default=list, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    context = models.TextField(blank=True, help_text="Title and headings, for search.")
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)

    class Meta:
        ordering = ["source_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["source", "ordinal"], name="chunk_unique_position"),
        ]
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["collection", "source"], name="chunk_collection_source"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id}#{self.ordinal}"

    @property
    def heading(self) -> str:
        return " › ".join(self.heading_path)


class EmbeddingSpace(models.Model):
    """The embedding model the stored vectors came from (a single row).

    Vectors from two models must never be mixed: indexing and search refuse to run when the
    configured model differs from this record until ``manage.py reindex`` moves everything.
    """

    name = models.CharField(max_length=200)
    dimensions = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.dimensions})"


class LexemeStat(models.Model):
    """How many chunks of a collection hold a word (a stemmed lexeme of their ``search_vector``);
    the row with the empty lexeme counts the collection's chunks.

    Kept exact by statement-level triggers on ``knowledge_chunk`` (migration 0004), so full-text
    ranking reads document frequencies here instead of counting postings per query. Summed over
    the collections a user may read, so no count reveals another collection.
    """

    # Only the triggers write these rows, always under the collection's advisory lock: Django's
    # cascade must not delete them out of that order (it would deadlock with indexing in the
    # same collection), so no constraint; deleting a collection's chunks brings its rows to 0,
    # and the triggers remove rows that reach 0.
    collection = models.ForeignKey(
        Collection, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    lexeme = models.TextField(blank=True)
    ndoc = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["collection", "lexeme"], name="lexemestat_unique")
        ]

    def __str__(self) -> str:
        return f"{self.lexeme or '(chunks)'}: {self.ndoc}"


class KnowledgeVersion(models.Model):
    """A number that changes whenever anything retrieval could read in a collection changes.

    Written only by triggers on ``knowledge_source`` and ``knowledge_chunk`` (migration 0007),
    on every path (admin, ORM, raw SQL, a cascade): a source added, moved, renamed, re-indexed
    or removed, a chunk inserted, edited or deleted. Values come from one sequence, so they
    never repeat, even for a collection deleted and made again. The answer cache keys on it
    (``assistant.answering.cache``): an answer made from older knowledge is never reused.
    No model field holds it, so a ``Collection.save()`` from a stale form cannot roll it back.
    """

    # No constraint, for the reason given on LexemeStat: Django's cascade must not delete the
    # row a trigger writes in the same statement. A row left behind by a deleted collection is
    # harmless (collection ids are never reused).
    collection = models.OneToOneField(
        Collection,
        primary_key=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    version = models.BigIntegerField()

    def __str__(self) -> str:
        return f"collection {self.collection_id}: version {self.version}"


class PageEdge(models.Model):
    """A line at the top or bottom edge of an indexed HTML page, as a fingerprint: the memory
    that finds a site's furniture (header, menus, footer) across the pages of a collection.

    ``knowledge.parsing.furniture`` decides from these rows: a line offered by enough of the
    collection's pages is furniture and left out of the page's chunks. ``repeated`` records what
    the decision was when the source's chunks were made, so indexing can tell when a later page
    changed it (the first pages of a site are indexed before their footer is known to repeat)
    and index those pages again. The collection is read through the source, so a moved source
    counts where it is now.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    # 0, 1, ... from the top; -1, -2, ... from the bottom (a short page's line may be both).
    position = models.SmallIntegerField()
    fingerprint = models.BigIntegerField(null=True)  # None: code or long prose, never furniture
    content = models.BooleanField(default=False)  # a sentence or code: stops the peeling
    repeated = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "position"], name="pageedge_unique_position")
        ]
        indexes = [models.Index(fields=["fingerprint"], name="pageedge_fingerprint")]

    def __str__(self) -> str:
        return f"{self.source_id}@{self.position}"
