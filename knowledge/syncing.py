"""Keeping web pages true: scheduled checks of URL sources, and sitemaps that add pages.

The beat schedule runs :func:`refresh_due` (task ``knowledge.refresh_due``): it claims the URL
sources and sitemaps whose interval has passed (oldest due first, a bounded batch) and queues
one check each on the ``ingest`` queue. A check (:func:`source_refresh`) asks the server with
the validators it gave last time (If-None-Match / If-Modified-Since): a 304, or the same bytes
as the chunks were made from, costs no embedding and no chunk write, only ``last_checked_at``.
A changed page goes through the ordinary indexing (``services.source_index`` with the fetched
bytes), which replaces the chunks in one transaction: the old ones answer until then. A page
answering 404/410 on ``URL_GONE_AFTER_TRIES`` checks in a row is marked gone and its
collection's managers are told; its passages stay until one of them decides.

Every fetch, sitemaps and the pages they list included, goes through ``knowledge.fetching``
with the same address rules, redirect checks and size caps as "add a web page".
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from lxml import etree

from accounts.events import user_event_send
from assistant.project.tasking import enqueue_on_commit
from knowledge import fetching, services
from knowledge.models import Collection, Sitemap, Source
from knowledge.selectors import (
    can_manage_collection,
    collection_manager_ids,
    users_to_notify_about,
)

logger = logging.getLogger(__name__)

# A queued check not done by then (its task was lost) is due again: long enough for a backlog.
CLAIM = timedelta(hours=1)
# A check that failed for a passing reason (timeout, 5xx) is tried again this much later.
RETRY_AFTER = timedelta(hours=1)
MISSING, UNLISTED = "missing", "unlisted"  # Source.gone_reason
XML_TYPES = frozenset({"application/xml", "text/xml"})
REFUSED_SHOWN = 50  # refused sitemap entries kept in its report (the count is always kept)

# Due: the interval (its own, else its collection's, else the site's; 0 never) has passed since
# the last check (or the first indexing), or a claim expired. Oldest first, rows being claimed
# by another tick skipped; the claim is taken in the same statement. The pick is a materialized
# CTE: as ``WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`` PostgreSQL may run the
# sub-select more than once and claim more than ``n`` rows.
_DUE_SOURCES = """
WITH picked AS MATERIALIZED (
    SELECT s.id FROM knowledge_source s
    JOIN knowledge_collection c ON c.id = s.collection_id
    WHERE s.kind = 'url' AND s.status IN ('ready', 'failed') AND s.gone_reason <> 'unlisted'
      AND COALESCE(s.refresh_hours, c.refresh_hours, %(default)s) > 0
      AND COALESCE(s.check_claimed_until,
                   COALESCE(s.last_checked_at, s.indexed_at, s.created_at)
                   + make_interval(hours => COALESCE(s.refresh_hours, c.refresh_hours,
                                                     %(default)s))) <= %(now)s
    ORDER BY COALESCE(s.check_claimed_until,
                      COALESCE(s.last_checked_at, s.indexed_at, s.created_at)
                      + make_interval(hours => COALESCE(s.refresh_hours, c.refresh_hours,
                                                        %(default)s))), s.id
    LIMIT %(limit)s
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE knowledge_source t SET check_claimed_until = %(claim)s
FROM picked WHERE t.id = picked.id
RETURNING t.id
"""
_DUE_SITEMAPS = """
WITH picked AS MATERIALIZED (
    SELECT m.id FROM knowledge_sitemap m
    JOIN knowledge_collection c ON c.id = m.collection_id
    WHERE COALESCE(m.refresh_hours, c.refresh_hours, %(default)s) > 0
      AND COALESCE(m.check_claimed_until,
                   COALESCE(m.last_checked_at, m.created_at)
                   + make_interval(hours => COALESCE(m.refresh_hours, c.refresh_hours,
                                                     %(default)s))) <= %(now)s
    ORDER BY m.last_checked_at NULLS FIRST, m.id
    LIMIT %(limit)s
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE knowledge_sitemap t SET check_claimed_until = %(claim)s
FROM picked WHERE t.id = picked.id
RETURNING t.id
"""


class SitemapError(services.KnowledgeError):
    """A sitemap that cannot be read; the message is shown as is."""


class SitemapParseError(fetching.FetchError):
    """The sitemap's bytes are not a sitemap we read; the message is shown as is."""


@dataclass(frozen=True)
class DueWork:
    source_ids: list[int]
    sitemap_ids: list[int]


def refresh_due(*, now: datetime | None = None, limit: int | None = None) -> DueWork:
    """Claims the web pages and sitemaps due for a check and queues one task each (on commit).

    Safe with several beats or ticks at once: a row is claimed once (``SKIP LOCKED``, then its
    claim pushes its due time past ``CLAIM``)."""
    now = now or timezone.now()
    params = {
        "now": now,
        "claim": now + CLAIM,
        "default": settings.URL_REFRESH_HOURS,
        "limit": limit or settings.URL_REFRESH_BATCH,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_DUE_SITEMAPS, params)
        sitemap_ids = sorted(row[0] for row in cursor.fetchall())
        cursor.execute(_DUE_SOURCES, params)
        source_ids = sorted(row[0] for row in cursor.fetchall())
        for pk in sitemap_ids:
            enqueue_on_commit("knowledge.refresh_sitemap", pk)
        for pk in source_ids:
            enqueue_on_commit("knowledge.refresh_source", pk)
    if source_ids or sitemap_ids:
        logger.info(
            "queued web page checks",
            extra={"sources": len(source_ids), "sitemaps": len(sitemap_ids)},
        )
    return DueWork(source_ids=source_ids, sitemap_ids=sitemap_ids)


# --- one web page ---------------------------------------------------------------------------


class Outcome:
    """What a check found (returned for logs and tests)."""

    UNCHANGED = "unchanged"  # 304, or the same bytes: nothing embedded, nothing written
    CHANGED = "changed"  # re-indexed
    MISSING = "missing"  # 404/410, not yet as often as URL_GONE_AFTER_TRIES
    GONE = "gone"  # 404/410 that often: marked, managers told
    FAILED = "failed"  # refused (an address rule, a size cap, a type) or could not be indexed
    RETRY = "retry"  # a passing failure: due again after RETRY_AFTER
    SKIPPED = "skipped"  # gone, busy being indexed, or not a web page


def source_refresh(*, source_id: int) -> str:
    """Checks one web page against the original and brings its chunks up to date.

    Raises ``services.SourceBusy`` / ``services.TransientIndexingError`` from indexing (the task
    retries); every other outcome is recorded on the source and returned."""
    source = Source.objects.select_related("collection").filter(pk=source_id).first()
    if source is None or source.kind != Source.Kind.URL or source.gone_reason == UNLISTED:
        return Outcome.SKIPPED
    if source.is_busy:  # being indexed right now: that fetch is as fresh as this one
        _record(source, check_claimed_until=None)
        return Outcome.SKIPPED
    # Validators only while there are chunks from that content: a 304 must mean "as indexed".
    has_chunks = bool(source.indexed_hash) and source.chunks.exists()
    try:
        page = services.fetch_page(
            source.url,
            etag=source.etag if has_chunks else "",
            last_modified=source.last_modified if has_chunks else "",
        )
    except fetching.FetchError as exc:
        return _fetch_failed(source, exc)
    now = timezone.now()
    digest = hashlib.sha256(page.data).hexdigest()
    # A 304 counts only as the answer to our own validators (a server sending one unasked has
    # given us nothing to index); the same bytes as the chunks were made from are unchanged too.
    same = has_chunks and source.status == Source.Status.READY and digest == source.indexed_hash
    if (page.not_modified and has_chunks) or same:
        _record(
            source,
            last_checked_at=now,
            check_claimed_until=None,
            missing_count=0,
            etag=page.etag or source.etag,
            last_modified=page.last_modified or source.last_modified,
        )
        if source.gone_at is not None or source.status != Source.Status.READY:
            _recovered(source)
        return Outcome.UNCHANGED
    return _reindex(source, page, digest, now)


def _reindex(source: Source, page: fetching.FetchedPage, digest: str, now: datetime) -> str:
    before = source.indexed_hash
    services.source_index(
        source_id=source.pk, content=(page.data, services.page_file_name(page), page.content_type)
    )
    source.refresh_from_db()
    if source.status != Source.Status.READY or source.indexed_hash != digest:
        # Not indexed (a parse error, say: the source says why). The validators stay those of
        # the chunks that still answer, so the next check fetches the page in full again.
        _record(source, last_checked_at=now, check_claimed_until=None)
        return Outcome.FAILED
    changed = {"last_changed_at": now} if digest != before else {}
    _record(
        source,
        last_checked_at=now,
        check_claimed_until=None,
        missing_count=0,
        gone_at=None,
        gone_reason="",
        etag=page.etag,
        last_modified=page.last_modified,
        **changed,
    )
    return Outcome.CHANGED if changed else Outcome.UNCHANGED


def _fetch_failed(source: Source, exc: fetching.FetchError) -> str:
    now = timezone.now()
    if exc.status in (404, 410):
        return _missing(source, exc, now)
    if exc.transient:
        logger.info("web page check will retry", extra={"source_id": source.pk, "error": str(exc)})
        _record(source, check_claimed_until=now + RETRY_AFTER)
        return Outcome.RETRY
    # Refused by the rules (a redirect to a private address, too large, another type): the
    # passages already indexed stay; the source says why it can no longer be checked.
    _record(
        source,
        last_checked_at=now,
        check_claimed_until=None,
        status=Source.Status.FAILED,
        error=f"The last check failed: {exc}"[:2000],
    )
    return Outcome.FAILED


def _missing(source: Source, exc: fetching.FetchError, now: datetime) -> str:
    count = source.missing_count + 1
    fields = {"last_checked_at": now, "check_claimed_until": None, "missing_count": count}
    if count < settings.URL_GONE_AFTER_TRIES or source.gone_at is not None:
        _record(source, **fields)
        return Outcome.MISSING if source.gone_at is None else Outcome.GONE
    reason = (
        f"This page is gone: the site answered {exc.status} at the last {count} checks. "
        "Its passages still answer questions until you delete it or fix its address."
    )
    _mark_gone(source, MISSING, reason, now, fields)
    return Outcome.GONE


def _mark_gone(
    source: Source,
    why: str,
    reason: str,
    now: datetime,
    fields: dict | None = None,
    managers: list[int] | None = None,
) -> None:
    """``managers``: the collection's, when the caller marks many of its pages at once."""
    _record(
        source,
        **(fields or {}),
        gone_at=now,
        gone_reason=why,
        status=Source.Status.FAILED,
        error=reason[:2000],
    )
    logger.warning("web page gone", extra={"source_id": source.pk, "reason": reason})
    user_event_send(
        user_ids=managers if managers is not None else collection_manager_ids(source.collection),
        event={"type": "source.gone", "source": services.source_as_event(source)},
    )


def _recovered(source: Source) -> None:
    """The page answers again (or was failed for a reason that passed): back to ready."""
    if source.chunks.exists():
        _record(source, gone_at=None, gone_reason="", status=Source.Status.READY, error="")


def _record(source: Source, **fields) -> None:
    """Saves the fields; a visible change (status, error) goes to the live page as well."""
    for name, value in fields.items():
        setattr(source, name, value)
    source.save(update_fields=[*fields, "updated_at"])
    if {"status", "error"} & fields.keys():
        user_event_send(
            user_ids=users_to_notify_about(source),
            event={"type": "source.updated", "source": services.source_as_event(source)},
        )


# --- sitemaps -------------------------------------------------------------------------------


@dataclass
class SitemapReading:
    """What one reading of a sitemap (and the sitemaps it indexes) found."""

    pages: list[str] = field(default_factory=list)  # every page the rules accept, in order, once
    refused: list[dict] = field(default_factory=list)
    refused_count: int = 0
    sitemaps_read: int = 0
    sitemaps_left_out: int = 0  # listed sitemap files past SITEMAP_MAX_FILES, not fetched
    # Sitemap files the tree lists that were not read (failed, refused, too deep, past the cap).
    # Their pages are unknown, so no page may be called "no longer listed" after this reading.
    unread: int = 0

    @property
    def complete(self) -> bool:
        return self.unread == 0

    def refuse(self, url: str, reason: str) -> None:
        self.refused_count += 1
        if len(self.refused) < REFUSED_SHOWN:
            self.refused.append({"url": url[:2000], "reason": reason})


def sitemap_url_for(url: str) -> str:
    """A site's root ("https://intranet.example/") means its /sitemap.xml."""
    parsed = fetching.validate_url_syntax(url)
    if parsed.path in ("", "/") and not parsed.query:
        return str(parsed.copy_with(path="/sitemap.xml", fragment=None))
    return str(parsed.copy_with(fragment=None))


def sitemap_add(*, user, collection: Collection, url: str, enqueue: bool = True) -> Sitemap:
    """Adds a sitemap (or a site's root) to a collection and queues its first reading
    (``enqueue=False``: the caller reads it, as ``manage.py sitemap`` does)."""
    if not can_manage_collection(user, collection):
        raise services.NotAllowed("You may not change this collection.")
    try:
        clean = sitemap_url_for(url)
    except fetching.FetchError as exc:
        raise SitemapError(str(exc)) from None
    with transaction.atomic():
        sitemap, created = Sitemap.objects.get_or_create(
            collection=collection,
            url=clean,
            defaults={"owner": user, "check_claimed_until": timezone.now() + CLAIM},
        )
        if created and enqueue:
            enqueue_on_commit("knowledge.refresh_sitemap", sitemap.pk)
    return sitemap


def sitemap_refresh(*, sitemap_id: int) -> Sitemap | None:
    """Reads a sitemap again: listed pages not yet in the collection are added (and indexed)
    while the sitemap has room, pages it listed before and no longer lists are marked, entries
    the rules refuse are reported. Failures are recorded on the sitemap, never raised.

    Pages are marked "no longer listed" only after a complete reading: when any sitemap file of
    the tree was not read (it failed, was refused, nested too deep or past
    ``SITEMAP_MAX_FILES``), its pages are unknown and nothing is marked."""
    sitemap = Sitemap.objects.select_related("collection").filter(pk=sitemap_id).first()
    if sitemap is None:
        return None
    now = timezone.now()
    try:
        reading = read_sitemap(sitemap.url)
    except fetching.FetchError as exc:
        retry = now + RETRY_AFTER if exc.transient else None
        _save_sitemap(
            sitemap, error=str(exc)[:2000], check_claimed_until=retry, last_checked_at=now
        )
        return sitemap
    with transaction.atomic():
        # One reading at a time writes a sitemap's pages: its count of pages must stay true.
        if not Sitemap.objects.select_for_update().filter(pk=sitemap.pk).exists():
            return None
        removed = _mark_unlisted(sitemap, set(reading.pages)) if reading.complete else 0
        added, left_out, kept = _add_pages(sitemap, reading.pages)
        report = {
            "listed": len(reading.pages),
            "accepted": kept,
            "added": added,
            "no_longer_listed": removed,
            "left_out": left_out,
            "refused_count": reading.refused_count,
            "refused": reading.refused,
            "complete": reading.complete,
            "sitemaps_read": reading.sitemaps_read,
            "sitemaps_unread": reading.unread,
            "sitemaps_left_out": reading.sitemaps_left_out,
        }
        changed = {"last_changed_at": now} if added or removed else {}
        _save_sitemap(
            sitemap,
            error="",
            report=report,
            last_checked_at=now,
            check_claimed_until=None,
            **changed,
        )
    return sitemap


def sitemap_reading_stopped(*, sitemap_id: int) -> None:
    """A reading ran out of time (the task's soft time limit): the sitemap says so, and its
    claim is released to come due again after ``RETRY_AFTER``, not at once and not never."""
    now = timezone.now()
    Sitemap.objects.filter(pk=sitemap_id).update(
        error="Reading this sitemap took too long and was stopped; it is tried again later.",
        last_checked_at=now,
        check_claimed_until=now + RETRY_AFTER,
    )


def _save_sitemap(sitemap: Sitemap, **fields) -> None:
    for name, value in fields.items():
        setattr(sitemap, name, value)
    sitemap.save(update_fields=list(fields))


LOOKUP_BATCH = 500  # listed pages looked up in the collection per query


def _add_pages(sitemap: Sitemap, pages: list[str]) -> tuple[int, int, int]:
    """Takes listed pages into the sitemap's care, in listed order, while it has room: the
    pages linked to a sitemap and not marked unlisted never number more than
    ``SITEMAP_MAX_PAGES``, however often its listing changes. Returns (added, left out, in its
    care now). Left out counts the listed pages not looked at once the room was used, some of
    which may already be in the collection by other means."""
    linked = dict(Source.objects.filter(sitemap=sitemap).values_list("url", "gone_reason"))
    kept = sum(1 for reason in linked.values() if reason != UNLISTED)
    new = [url for url in pages if linked.get(url, UNLISTED) == UNLISTED]
    room = max(0, settings.SITEMAP_MAX_PAGES - kept)
    added = done = 0
    while done < len(new) and added < room:
        batch = new[done : done + LOOKUP_BATCH]
        existing = dict(
            Source.objects.filter(
                collection=sitemap.collection, name__in=[p[:300] for p in batch]
            ).values_list("name", "pk")
        )
        for url in batch:
            if added >= room:
                break
            done += 1
            added += _take_page(sitemap, url, existing.get(url[:300]))
    return added, len(new) - done, kept + added


def _take_page(sitemap: Sitemap, url: str, known: int | None) -> bool:
    """Adds a listed page to the sitemap's care; False when it is another's (a person's page,
    another sitemap's) or was added meanwhile."""
    if known is not None:
        # Listed again after it was marked unlisted: back in the sitemap's care, and checked.
        back = Source.objects.filter(pk=known, sitemap=sitemap, gone_reason=UNLISTED)
        if not back.update(gone_at=None, gone_reason="", missing_count=0, check_claimed_until=None):
            return False
        source = Source.objects.get(pk=known)
        _record(source, status=Source.Status.QUEUED, progress=0, error="")
        enqueue_on_commit("knowledge.index_source", known)
        return True
    try:
        with transaction.atomic():
            source = Source.objects.create(
                collection=sitemap.collection,
                owner=sitemap.owner,
                kind=Source.Kind.URL,
                name=url[:300],
                url=url,
                sitemap=sitemap,
            )
    except IntegrityError:  # added meanwhile (another reading, a person): it is there
        return False
    enqueue_on_commit("knowledge.index_source", source.pk)
    return True


def _mark_unlisted(sitemap: Sitemap, listed: set[str]) -> int:
    """Marks the sitemap's pages that a complete reading no longer lists."""
    mine = Source.objects.filter(sitemap=sitemap).exclude(gone_reason=UNLISTED)
    gone = [pk for pk, url in mine.values_list("pk", "url") if url not in listed]
    now = timezone.now()
    reason = (
        f"This page is no longer listed in the sitemap {sitemap.url}. Its passages still "
        "answer questions until you delete it."
    )
    managers = collection_manager_ids(sitemap.collection)  # once, not per page
    for source in Source.objects.filter(pk__in=gone).select_related("collection"):
        _mark_gone(source, UNLISTED, reason, now, managers=managers)
    return len(gone)


def read_sitemap(url: str) -> SitemapReading:
    """Fetches a sitemap and the sitemaps it indexes (to ``SITEMAP_MAX_DEPTH`` levels, at most
    ``SITEMAP_MAX_FILES`` of them besides the first), with the fetcher's rules for each; keeps
    the page URLs on the sitemap's own site (scheme, host and port) that pass the address rules
    and reports the others. Only the first sitemap failing raises."""
    reading = SitemapReading()
    root = httpx.URL(url)
    checked_hosts: dict[tuple[str, str, int | None], str | None] = {}
    pending = deque([(url, 1)])
    seen_sitemaps, seen_pages = {url}, set()
    queued = 0  # sitemaps queued besides the first: at most SITEMAP_MAX_FILES
    while pending:
        current, depth = pending.popleft()
        try:
            page = services.fetch_page(current, content_types=XML_TYPES)
            kind, locations = parse_sitemap(page.data)
        except fetching.FetchError as exc:
            if current == url:
                raise
            reading.unread += 1
            reading.refuse(current, f"This sitemap could not be read: {exc}")
            continue
        reading.sitemaps_read += 1
        for location in locations:
            reason = _refusal(location, root, checked_hosts)
            if kind == "urlset":
                if reason:
                    reading.refuse(location, reason)
                elif location not in seen_pages:
                    seen_pages.add(location)
                    reading.pages.append(location)
            elif location not in seen_sitemaps:
                seen_sitemaps.add(location)
                if _follow(reading, location, reason, depth=depth, queued=queued):
                    queued += 1
                    pending.append((location, depth + 1))
    return reading


def _follow(
    reading: SitemapReading, location: str, reason: str | None, *, depth: int, queued: int
) -> bool:
    """Whether a sitemap an index lists (at ``depth``) is read, ``queued`` others being queued
    already; when not, the reading is incomplete and says why."""
    if not reason and depth >= settings.SITEMAP_MAX_DEPTH:
        reason = (
            f"Sitemaps nested deeper than {settings.SITEMAP_MAX_DEPTH} levels are not followed."
        )
    if reason:
        reading.refuse(location, reason)
    elif queued >= settings.SITEMAP_MAX_FILES:
        reading.sitemaps_left_out += 1
    else:
        return True
    reading.unread += 1
    return False


def _refusal(location: str, root: httpx.URL, checked: dict) -> str | None:
    """Why a sitemap entry is not followed, or None. The address rules are checked once per
    host (DNS costs), and again by the fetch itself, since DNS can change."""
    try:
        parsed = fetching.validate_url_syntax(location)
    except fetching.FetchError as exc:
        return str(exc)
    if (parsed.host, parsed.port) != (root.host, root.port):
        return f"It is on another site ({parsed.host}) than the sitemap ({root.host})."
    # http and https of one host are two sites (the default ports look the same here).
    if parsed.scheme != root.scheme:
        return (
            f"It uses {parsed.scheme}:// but the sitemap uses {root.scheme}://; a sitemap lists "
            "pages of its own site only."
        )
    key = (parsed.scheme, parsed.host, parsed.port)
    if key not in checked:
        try:
            fetching.check_url_address(
                location,
                allowed_hosts=settings.URL_FETCH_ALLOWED_HOSTS,
                allowed_networks=settings.URL_FETCH_ALLOWED_NETWORKS,
            )
            checked[key] = None
        except fetching.FetchError as exc:
            checked[key] = str(exc)
    return checked[key]


SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
MAX_LOCATIONS = 50_000  # the sitemap protocol's own limit per file


def parse_sitemap(data: bytes) -> tuple[str, list[str]]:
    """("urlset" | "sitemapindex", the <loc> values) of a sitemap file.

    Hostile XML is refused before parsing: a sitemap never needs a DOCTYPE, so any document
    type declaration (the door to entity expansion bombs and external entities) is refused, and
    the parser is set to resolve no entities and load nothing from the network anyway."""
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise SitemapParseError(
            "This sitemap declares a document type or entities, which sitemaps never need; "
            "it was not read."
        )
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise SitemapParseError(f"This sitemap is not valid XML ({exc}).") from None
    tag = etree.QName(root).localname
    if tag not in ("urlset", "sitemapindex"):
        raise SitemapParseError("This file is not a sitemap (no <urlset> or <sitemapindex>).")
    locations = []
    for element in root.iter(f"{SITEMAP_NS}loc", "loc"):
        text = (element.text or "").strip()
        if text:
            locations.append(text)
        if len(locations) >= MAX_LOCATIONS:
            break
    return tag, locations
