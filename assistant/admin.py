"""The chat domain in the admin. Memory is private: even superusers need the explicit permission."""

from django.contrib import admin
from django.contrib.auth.models import Permission

from assistant.models import Feedback, MemoryItem


def _explicitly_granted(user, codename: str) -> bool:
    # Superusers pass every has_perm() check; memory needs a grant someone made on purpose.
    return user.is_active and Permission.objects.filter(
        codename=codename, content_type__app_label="assistant"
    ).filter(user=user).union(
        Permission.objects.filter(codename=codename, content_type__app_label="assistant", group__user=user)
    ).exists()


@admin.register(MemoryItem)
class MemoryItemAdmin(admin.ModelAdmin):
    list_display = ["owner", "text", "updated_at"]
    search_fields = ["owner__email"]
    exclude = ["embedding"]
    readonly_fields = ["owner", "text", "source_message", "created_at", "updated_at"]

    def _granted(self, request) -> bool:
        return _explicitly_granted(request.user, "read_user_memory")

    def has_module_permission(self, request):
        return self._granted(request)

    def has_view_permission(self, request, obj=None):
        return self._granted(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self._granted(request)


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["message", "user", "rating", "comment", "created_at"]
    list_filter = ["rating"]
    readonly_fields = ["message", "user", "rating", "comment", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False


