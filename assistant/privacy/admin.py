"""The admin's "Erase the selected people" action on people.

accounts sits on the lowest floor and may not import the erasure (which reaches
conversations and knowledge), so this app registers people's admin again: the same
``accounts.admin.UserAdmin`` with one more action. Everything else about the page stays
accounts' own.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from accounts.admin import UserAdmin
from assistant.privacy.erasure import ErasureRefused, erasure_check, erasure_preview, user_erase

User = get_user_model()


class PersonAdmin(UserAdmin):
    """Deleting a person here is erasing them: Django's own "delete selected" is gone, and the
    Delete button's confirmed post erases (stand-in accounts, Slack deliveries, the audit
    event and the last-administrator rule included), so no path deletes less."""

    actions = ["erase_people"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_deleted_objects(self, objs, request):
        # Their conversations and memory have no delete permission of their own in the admin
        # (nobody edits them there); erasing the person removes them, so none is "needed".
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_model(self, request, obj):
        try:
            user_erase(actor=request.user, user=obj)
        except ErasureRefused as exc:
            raise PermissionDenied(str(exc)) from None

    @admin.action(description="Erase the selected people and their data…", permissions=["delete"])
    def erase_people(self, request, queryset):
        """First a confirmation page listing what goes; its form posts the action back with
        ``confirmed=yes`` (and the admin's CSRF protection), and only then are they erased."""
        people = list(queryset.order_by("email"))
        if request.POST.get("confirmed") != "yes":
            return self._confirmation(request, people)
        delete_sources = request.POST.get("delete_sources") == "yes"
        for person in people:
            email = person.email
            try:
                counts = user_erase(actor=request.user, user=person, delete_sources=delete_sources)
            except ErasureRefused as exc:
                self.message_user(request, f"Could not erase {email}. {exc}", messages.ERROR)
                continue
            kept = (
                f" Their {counts.sources_kept} source(s) are now yours."
                if counts.sources_kept
                else ""
            )
            self.message_user(
                request,
                f"Erased {email}: the account, {counts.describe()}.{kept}",
                messages.SUCCESS,
            )
        return None

    def _confirmation(self, request, people):
        rows = []
        for person in people:
            try:
                erasure_check(actor=request.user, user=person)
                refused = ""
            except ErasureRefused as exc:
                refused = str(exc)
            rows.append(
                {"person": person, "preview": erasure_preview(user=person), "refused": refused}
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Erase people and their data",
            "opts": self.model._meta,
            "rows": rows,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "privacy/erase_confirm.html", context)


admin.site.unregister(User)
admin.site.register(User, PersonAdmin)
