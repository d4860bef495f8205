"""The browser door to knowledge: list collections, add and manage sources, inspect chunks.

Thin by design: parse the input, fetch with permission through ``knowledge.selectors`` (missing
and forbidden are the same 404), call one ``knowledge.services`` function, render. Endpoints the
page calls with ``fetch()`` answer JSON; a plain form post (no JavaScript) gets a redirect and a
message instead. A source's table row is rendered here only (``_source_row.html``): the page's
script fetches it again (``source_row``, ``source_rows``) and swaps it in when the source changes.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from knowledge import parsing, selectors, services, syncing
from knowledge.forms import CollectionForm, SitemapUrlForm, SourceUrlForm
from knowledge.models import Collection, Source

# Multipart framing and the CSRF field around the file itself.
UPLOAD_OVERHEAD_BYTES = 64 * 1024
CHUNKS_PER_PAGE = 50
# A collection lists its newest sources a page at a time: an ingest backlog of thousands must
# not turn the page into thousands of rows (and the script's polling of its busy rows).
SOURCES_PER_PAGE = 50
MAX_STATUS_IDS = 200


def _wants_html(request) -> bool:
    # Browsers navigating (a form post without JavaScript) ask for text/html; our fetch() asks JSON.
    return "text/html" in request.headers.get("Accept", "")


def _refusal(request, message: str, status: int = 400):
    if _wants_html(request):
        messages.error(request, message)
        return redirect("knowledge:index")
    return JsonResponse({"ok": False, "error": message}, status=status)


def _success(request, message: str, **fields):
    """What went well, as the asker wants it: a message on the page, or JSON with ``fields``."""
    if _wants_html(request):
        messages.success(request, message)
        return redirect("knowledge:index")
    return JsonResponse({"ok": True, "message": message, **fields})


def _done(request, result: services.UploadResult):
    return _success(
        request,
        result.message,
        source=services.source_as_event(result.source),
        created=result.created,
    )


def _manageable_collection(request, collection_id: int) -> Collection:
    try:
        return selectors.collection_get_manageable(user=request.user, collection_id=collection_id)
    except Collection.DoesNotExist:
        raise Http404("No such collection.") from None


def _manageable_source(request, source_id: int) -> Source:
    try:
        return selectors.source_get_manageable(user=request.user, source_id=source_id)
    except Source.DoesNotExist:
        raise Http404("No such source.") from None


def _readable_source(request, source_id: int) -> Source:
    try:
        return selectors.source_get_readable(user=request.user, source_id=source_id)
    except Source.DoesNotExist:
        raise Http404("No such source.") from None


def _content_length(request) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


@require_GET
def index(request):
    return _render_index(request)


def _render_index(request, collection_form: CollectionForm | None = None, status: int = 200):
    user = request.user
    manageable_ids = set(selectors.collections_manageable_by(user).values_list("id", flat=True))
    pages = selectors.source_pages_for(
        user=user,
        per_page=SOURCES_PER_PAGE,
        paged_collection_id=_int_or_none(request.GET.get("collection")),
        page_number=request.GET.get("page"),
    )
    collections = []
    for collection, page in pages:
        collection.can_manage = collection.pk in manageable_ids
        collection.page = page
        collections.append(collection)
    context = {
        "collections": collections,
        "collection_form": collection_form
        or (CollectionForm(user=user) if user.is_staff else None),
        "max_upload_bytes": settings.KNOWLEDGE_MAX_UPLOAD_BYTES,
        "sitemap_max_pages": settings.SITEMAP_MAX_PAGES,
        "supported_types": ", ".join(
            f"{parser.label} ({', '.join(parser.extensions)})"
            for parser in parsing.PARSERS.values()
        ),
        "accept": ",".join(sorted(parsing.SUPPORTED_EXTENSIONS)),
    }
    return render(request, "knowledge/index.html", context, status=status)


@require_POST
def collection_create(request):
    if not request.user.is_staff:
        raise PermissionDenied("Only staff create collections.")
    form = CollectionForm(request.POST, user=request.user)
    if not form.is_valid():
        return _render_index(request, collection_form=form, status=400)
    try:
        collection = services.collection_create(user=request.user, **form.service_kwargs())
    except services.KnowledgeError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Collection {collection.name} created.")
    return redirect("knowledge:index")


@csrf_exempt  # checked in _source_upload, after the size check, so an oversize body is never parsed
@require_POST
def source_upload(request, collection_id: int):
    limit = settings.KNOWLEDGE_MAX_UPLOAD_BYTES
    if _content_length(request) > limit + UPLOAD_OVERHEAD_BYTES:
        return _refusal(
            request, f"This file is larger than the {filesizeformat(limit)} limit.", 413
        )
    return _source_upload(request, collection_id)


@csrf_protect
def _source_upload(request, collection_id: int):
    collection = _manageable_collection(request, collection_id)
    files = request.FILES.getlist("file")
    if len(files) != 1:
        return _refusal(request, "Send exactly one file per upload.")
    upload = files[0]
    try:
        result = services.source_create_from_upload(
            user=request.user,
            collection=collection,
            filename=upload.name,
            data=upload.read(),
            content_type=upload.content_type,
        )
    except services.NotAllowed:
        raise Http404("No such collection.") from None
    except services.KnowledgeError as exc:
        return _refusal(request, str(exc))
    return _done(request, result)


@require_POST
def source_add_url(request, collection_id: int):
    collection = _manageable_collection(request, collection_id)
    form = SourceUrlForm(request.POST, user=request.user)
    if not form.is_valid():
        return _refusal(request, " ".join(form.errors["url"]))
    try:
        result = services.source_create_from_url(
            user=request.user, collection=collection, url=form.cleaned_data["url"]
        )
    except services.NotAllowed:
        raise Http404("No such collection.") from None
    except services.KnowledgeError as exc:
        return _refusal(request, str(exc))
    return _done(request, result)


@require_POST
def sitemap_add(request, collection_id: int):
    """A sitemap (or a site's root) for a collection: its pages become web-page sources, read
    now by a worker and again on the refresh schedule. Answers before the reading is done."""
    collection = _manageable_collection(request, collection_id)
    form = SitemapUrlForm(request.POST, user=request.user)
    if not form.is_valid():
        return _refusal(request, " ".join(form.errors["url"]))
    try:
        sitemap = syncing.sitemap_add(
            user=request.user, collection=collection, url=form.cleaned_data["url"]
        )
    except services.NotAllowed:
        raise Http404("No such collection.") from None
    except services.KnowledgeError as exc:
        return _refusal(request, str(exc))
    if sitemap.last_checked_at is None:
        message = (
            f"Reading {sitemap.url}: up to {settings.SITEMAP_MAX_PAGES} of the pages it lists "
            f"are added to {collection.name} as they are found, and kept in sync."
        )
    else:
        message = (
            f"{sitemap.url} is already in {collection.name}: "
            f"{sitemap.report.get('added', 0)} pages added at its last reading; "
            "it is read again on its schedule."
        )
    return _success(request, message, sitemap={"id": sitemap.pk, "url": sitemap.url})


@require_POST
def source_reindex(request, source_id: int):
    source = _manageable_source(request, source_id)
    services.source_reindex(user=request.user, source=source)
    message = f"{source.name} queued for re-indexing."
    return _success(request, message, source=services.source_as_event(source))


@require_http_methods(["GET", "POST"])
def source_delete(request, source_id: int):
    source = _manageable_source(request, source_id)
    if request.method == "GET":  # the confirmation step for browsers without JavaScript
        return render(request, "knowledge/source_confirm_delete.html", {"source": source})
    name = source.name
    services.source_delete(user=request.user, source=source)
    return _success(request, f"{name} deleted.")


@require_GET
def source_detail(request, source_id: int):
    """A source's passages. ``?chunk=<id>`` (a citation's link, with ``#chunk-<id>``) opens the
    page holding that passage, which the anchor then scrolls to and highlights."""
    try:
        source = selectors.source_get_readable(user=request.user, source_id=source_id)
    except Source.DoesNotExist:
        return _source_gone(request, source_id)
    chunks = selectors.chunks_of_source(user=request.user, source_id=source.pk)
    page_number = request.GET.get("page")
    chunk_id = _int_or_none(request.GET.get("chunk"))
    passage_moved = False
    if chunk_id is not None and page_number is None:
        position = selectors.chunk_position_in_source(source=source, chunk_id=chunk_id)
        passage_moved = position is None
        page_number = 1 if position is None else position // CHUNKS_PER_PAGE + 1
    page = Paginator(chunks, CHUNKS_PER_PAGE).get_page(page_number)
    context = {
        "source": source,
        "page": page,
        "passage_moved": passage_moved,
        "cited_chunk_id": None if passage_moved else chunk_id,
    }
    return render(request, "knowledge/source_detail.html", context)


def _source_gone(request, source_id: int):
    """A deleted source says so to those who read its collection (a citation may still point
    here); for anyone else it is the same 404 as an id that never existed."""
    removal = selectors.source_removal_for(user=request.user, source_id=source_id)
    if removal is None:
        raise Http404("No such source.")
    return render(request, "knowledge/source_removed.html", {"removal": removal}, status=410)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@require_GET
def source_status(request, source_id: int):
    return JsonResponse(services.source_as_event(_readable_source(request, source_id)))


def _ids(request) -> list[int] | None:
    """The ``?ids=1,2,3`` of a batch request (at most MAX_STATUS_IDS), or None if malformed."""
    try:
        ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.strip()]
    except ValueError:
        return None
    return ids[:MAX_STATUS_IDS]


@require_GET
def sources_status(request):
    """Several sources' state as JSON at once (``?ids=1,2,3``); the page itself refreshes its
    rows as HTML (``source_rows``).

    Ids the user may not read are left out, exactly like deleted ones.
    """
    ids = _ids(request)
    if ids is None:
        return JsonResponse({"ok": False, "error": "ids must be numbers."}, status=400)
    sources = selectors.sources_readable_by(request.user).filter(pk__in=ids)
    return JsonResponse({"sources": [services.source_as_event(source) for source in sources]})


# The rows below are swapped into a page that is already showing: "Updated" reads "just now"
# (``live``), as it always has for a row the page refreshed.


@never_cache
@require_GET
def source_row(request, source_id: int):
    """One source's table row, as the knowledge page shows it to this user."""
    source = _readable_source(request, source_id)
    context = {
        "source": source,
        "can_manage": selectors.can_manage_collection(request.user, source.collection),
        "live": True,
    }
    return render(request, "knowledge/_source_row.html", context)


@never_cache
@require_GET
def source_rows(request):
    """Several rows at once (``?ids=1,2,3``), for a page refreshing its busy rows.

    Ids the user may not read are left out, exactly like deleted ones: the page drops those rows.
    """
    ids = _ids(request)
    if ids is None:
        return JsonResponse({"ok": False, "error": "ids must be numbers."}, status=400)
    sources = list(selectors.sources_readable_by(request.user).filter(pk__in=ids))
    manageable_ids = set(
        selectors.collections_manageable_by(request.user).values_list("id", flat=True)
    )
    for source in sources:
        source.can_manage = source.collection_id in manageable_ids
    return render(request, "knowledge/_source_rows.html", {"sources": sources, "live": True})
