"""Knowledge in the Django admin. Querysets go through the same access selectors as the app,
and trust-relevant writes (moving or deleting a source, changing or deleting a collection) go
through the same services, which record them in the audit trail."""

from types import SimpleNamespace

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from knowledge import fetching, selectors, services, syncing
from knowledge.forms import SitemapUrlForm
from knowledge.models import Chunk, Collection, Document, EmbeddingSpace, Sitemap, Source


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "visibility", "source_count", "updated_at"]
    list_filter = ["visibility"]
    search_fields = ["name", "description"]
    filter_horizontal = ["read_groups", "manage_groups"]
    readonly_fields = ["created_by", "created_at", "updated_at"]

    def get_queryset(self, request):
        qs = selectors.collections_manageable_by(request.user)
        return qs.annotate(_sources=Count("sources"))

    @admin.display(description="sources", ordering="_sources")
    def source_count(self, obj):
        return obj._sources

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        # Read before anything is written: the groups are saved later, in save_related.
        form.access_before = services.collection_access(obj) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.collection_access_record(
            user=request.user, collection=form.instance, before=form.access_before
        )

    def delete_model(self, request, obj):
        services.collection_delete(user=request.user, collection=obj)

    def delete_queryset(self, request, queryset):
        for collection in queryset:
            services.collection_delete(user=request.user, collection=collection)


# Long enough to tell sources apart, short enough that the list fits a 1366 px screen; the
# full text is on hover (title) and on the change page.
NAME_CHARS = 40
COLLECTION_CHARS = 32
REASON_CHARS = 90


def _when(moment) -> str:
    # "2026-11-30 05:15" where the default "Nov. 30, 2026, 5:15 a.m." would not wrap.
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def _shortened(text: str, chars: int):
    short = Truncator(text).chars(chars)
    if short == text:
        return text
    return format_html('<span title="{}">{}</span>', text, short)


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    # Five columns (kind, progress and owner are filters or on the change page): the list must
    # fit a 1366 px screen beside its filters, with a failed source's reason in view.
    list_display = ["short_name", "collection_name", "state", "chunks", "checked"]
    list_display_links = ["short_name"]
    list_filter = ["status", "kind", "collection"]
    search_fields = ["name", "url", "error"]
    readonly_fields = [
        "kind",
        "file",
        "url",
        "content_type",
        "size",
        "content_hash",
        "indexed_hash",
        "embedding_model",
        "status",
        "progress",
        "error",
        "chunk_count",
        "created_at",
        "updated_at",
        "indexed_at",
        "last_checked_at",
        "last_changed_at",
        "missing_count",
        "gone_at",
        "sitemap",
        "owner",
    ]
    fields = ["collection", "name", "refresh_hours", *readonly_fields]
    actions = ["reindex_selected", "delete_selected_sources"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(collection__in=selectors.collections_manageable_by(request.user))
            .select_related("collection", "owner")
        )

    @admin.display(description="name", ordering="name")
    def short_name(self, obj):
        return _shortened(obj.name, NAME_CHARS)

    @admin.display(description="collection", ordering="collection__name")
    def collection_name(self, obj):
        return _shortened(obj.collection.name, COLLECTION_CHARS)

    @admin.display(description="checked", ordering="last_checked_at")
    def checked(self, obj):
        """When the source was last compared with its original, and (the day) it last changed:
        no wider than the date it replaces, so the list still fits a 1366 px screen."""
        if obj.checked_at is None:
            return "—"
        changed = timezone.localtime(obj.changed_at).strftime("%Y-%m-%d")
        return format_html("{}<br><small>changed {}</small>", _when(obj.checked_at), changed)

    @admin.display(description="chunks", ordering="chunk_count")
    def chunks(self, obj):
        return obj.chunk_count

    @admin.display(description="status", ordering="status")
    def state(self, obj):
        """The status, with the progress of a busy source and the reason of a failed one."""
        label = obj.get_status_display()
        if obj.status == Source.Status.FAILED and obj.error:
            return format_html(
                '{}: <span class="source-reason">{}</span>',
                label,
                _shortened(obj.error, REASON_CHARS),
            )
        if obj.is_busy:
            return f"{label} ({obj.progress}%)"
        return label

    def has_add_permission(self, request):
        return False  # files arrive through the Knowledge page or `manage.py ingest`

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # ours also deletes files and notifies
        return actions

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "collection":  # a source moves only between collections one manages
            kwargs["queryset"] = selectors.collections_manageable_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change and "collection" in form.changed_data:
            try:
                services.source_move(user=request.user, source=obj, collection=obj.collection)
            except services.KnowledgeError as exc:
                raise PermissionDenied(str(exc)) from exc
        super().save_model(request, obj, form, change)

    @admin.action(description="Re-index selected sources")
    def reindex_selected(self, request, queryset):
        for source in queryset:
            services.source_reindex(user=request.user, source=source)
        self.message_user(request, f"{queryset.count()} source(s) queued for re-indexing.")

    @admin.action(description="Delete selected sources (with their chunks and files)")
    def delete_selected_sources(self, request, queryset):
        count = 0
        for source in list(queryset):
            services.source_delete(user=request.user, source=source)
            count += 1
        self.message_user(request, f"{count} source(s) deleted.", messages.SUCCESS)

    def delete_model(self, request, obj):
        services.source_delete(user=request.user, source=obj)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin):
    list_display = ["title", "source", "created_at"]
    search_fields = ["title", "source__name"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(source__collection__in=selectors.collections_manageable_by(request.user))
            .select_related("source")
        )


@admin.register(Chunk)
class ChunkAdmin(ReadOnlyAdmin):
    list_display = ["source", "ordinal", "page", "heading", "token_count", "preview"]
    list_filter = ["collection"]
    search_fields = ["text", "source__name"]
    exclude = ["embedding"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(collection__in=selectors.collections_manageable_by(request.user))
            .select_related("source")
            .defer("embedding")
        )

    @admin.display(description="text")
    def preview(self, obj):
        return obj.text[:120] + ("…" if len(obj.text) > 120 else "")


# Whoever uses the admin is staff: the address check may say where a name points.
_STAFF = SimpleNamespace(is_staff=True)


class SitemapForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https", label="Sitemap or site address")

    class Meta:
        model = Sitemap
        fields = ["collection", "url", "refresh_hours"]

    def clean_url(self) -> str:
        # The Knowledge page's own check (the fetch's address rules; the admin is for staff,
        # who are told which address a name points to), then the service's reading, so a
        # refused address is a form error here too, not a failed reading later.
        checked = SitemapUrlForm({"url": self.cleaned_data["url"]}, user=_STAFF)
        if not checked.is_valid():
            raise forms.ValidationError(checked.errors["url"])
        try:
            return syncing.sitemap_url_for(checked.cleaned_data["url"])
        except fetching.FetchError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(Sitemap)
class SitemapAdmin(admin.ModelAdmin):
    """Sitemaps: added here (a sitemap.xml or a site's root), read at once and again on the
    refresh schedule; each reading's findings (pages added, refused and why) on the page."""

    form = SitemapForm
    list_display = ["url", "collection", "pages_added", "last_checked_at", "last_changed_at"]
    list_filter = ["collection"]
    search_fields = ["url"]
    readonly_fields = ["owner", "last_checked_at", "last_changed_at", "error", "report"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(collection__in=selectors.collections_manageable_by(request.user))
            .select_related("collection")
        )

    def get_readonly_fields(self, request, obj=None):
        fixed = ["collection", "url"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "collection":
            kwargs["queryset"] = selectors.collections_manageable_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="pages")
    def pages_added(self, obj):
        return obj.report.get("accepted", "—") if obj.report else "—"

    def save_model(self, request, obj, form, change):
        if change:  # only the interval changes here
            super().save_model(request, obj, form, change)
            return
        try:
            added = syncing.sitemap_add(user=request.user, collection=obj.collection, url=obj.url)
        except services.KnowledgeError as exc:
            raise PermissionDenied(str(exc)) from exc
        added.refresh_hours = obj.refresh_hours
        added.save(update_fields=["refresh_hours"])
        obj.pk = added.pk


@admin.register(EmbeddingSpace)
class EmbeddingSpaceAdmin(ReadOnlyAdmin):
    list_display = ["name", "dimensions", "updated_at"]
