"""The chat domain in the admin. Conversations and memory are private: even superusers need an
explicit permission, and every look at another person's is recorded in the audit trail."""

from django.contrib import admin

from accounts.audit import Action, audit_record
from assistant.models import Conversation, Feedback, MemoryItem, Message
from assistant.selectors import explicitly_granted


class PrivateDataAdmin(admin.ModelAdmin):
    """Read-only views of people's private data: only with the explicit ``permission``, and
    every list and every opening recorded as ``viewed_action`` about the ``owner``."""

    permission: str
    viewed_action: str

    def _granted(self, request) -> bool:
        return explicitly_granted(request.user, self.permission)

    def has_module_permission(self, request):
        return self._granted(request)

    def has_view_permission(self, request, obj=None):
        return self._granted(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if response.status_code == 200:
            audit_record(
                actor=request.user,
                action=self.viewed_action,
                detail={"list": True, "query": request.GET.urlencode()[:500]},
            )
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        obj = self.get_object(request, object_id)
        if response.status_code == 200 and obj is not None:
            audit_record(
                actor=request.user,
                action=self.viewed_action,
                target=obj,
                subject=obj.owner,
                # Their words (a title, a memory's text) stay out of the trail: the id says
                # what was opened, and erasing the person leaves nothing of what they wrote.
                target_repr=f"{obj._meta.verbose_name} {obj.pk}",
            )
        return response


@admin.register(MemoryItem)
class MemoryItemAdmin(PrivateDataAdmin):
    permission = "read_user_memory"
    viewed_action = Action.MEMORY_VIEWED
    list_display = ["owner", "text", "updated_at"]
    search_fields = ["owner__email"]
    exclude = ["embedding"]
    readonly_fields = ["owner", "text", "source_message", "created_at", "updated_at"]

    def has_delete_permission(self, request, obj=None):
        return self._granted(request)

    def delete_model(self, request, obj):
        self._record_deletion(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for item in queryset.select_related("owner"):
            self._record_deletion(request, item)
        super().delete_queryset(request, queryset)

    @staticmethod
    def _record_deletion(request, item) -> None:
        audit_record(
            actor=request.user,
            action=Action.MEMORY_DELETED,
            target=item,
            subject=item.owner,
            # The text is the evidence of what was deleted (in ``detail``, once); the target's
            # name is its id, as for every look at a person's data.
            target_repr=f"memory item {item.pk}",
            detail={"text": item.text},
        )


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["created_at", "role", "status", "content", "superseded"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["created_at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(PrivateDataAdmin):
    """Another person's conversation, read-only, for those explicitly granted the right (e.g. to
    follow up a 👎 or a complaint)."""

    permission = "read_user_conversations"
    viewed_action = Action.CONVERSATION_VIEWED
    list_display = ["title", "owner", "origin", "updated_at"]
    list_filter = ["origin"]
    search_fields = ["owner__email", "title"]
    list_select_related = ["owner"]
    readonly_fields = ["owner", "title", "origin", "remember", "created_at", "updated_at"]
    exclude = ["summary", "summary_until", "slack_team", "slack_channel", "slack_thread_ts"]
    inlines = [MessageInline]


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["message", "user", "rating", "comment", "created_at"]
    list_filter = ["rating"]
    readonly_fields = ["message", "user", "rating", "comment", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False
