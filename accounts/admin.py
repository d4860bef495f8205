from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import AccessToken, AuditEvent, User
from accounts.tokens import token_revoke


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_superuser", "is_active", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active", "groups"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name"]}),
        (
            "Permissions",
            {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]},
        ),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]}),
    ]
    filter_horizontal = ["groups", "user_permissions"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only for everyone, superusers included: the trail is evidence, not data to edit."""

    list_display = ["created_at", "actor_email", "action", "target_repr", "subject"]
    list_filter = ["action", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor_email", "target_repr", "target_id", "subject__email"]
    date_hierarchy = "created_at"
    list_select_related = ["subject"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    """Every person's tokens, for staff: who owns which, its scope and use, and "Revoke".
    The secret is never stored, so there is nothing to show; tokens are created by their
    owners (account page, ``manage.py create_token``), never here."""

    list_display = [
        "prefix",
        "name",
        "owner",
        "scope",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["prefix", "name", "owner__email"]
    list_select_related = ["owner"]
    actions = ["revoke"]
    fields = [
        "owner",
        "name",
        "prefix",
        "scope",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("collections")

    @admin.display(description="scope")
    def scope(self, token: AccessToken) -> str:
        if not token.narrowed:
            return "Everything its owner can read"
        names = sorted(str(c) for c in token.collections.all())
        return ", ".join(names) or "Nothing (its collections were deleted)"

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = 0
        for token in queryset.select_related("owner").filter(revoked_at__isnull=True):
            token_revoke(actor=request.user, token=token)
            count += 1
        self.message_user(request, f"{count} token(s) revoked. They stop working at once.")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Revoke, don't delete: the row is what the audit trail and logs point at.
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff
