"""Account doors: the "my account" page and the admin's sign-in page."""

from __future__ import annotations

from urllib.parse import urlencode

from allauth.account.authentication import get_authentication_records
from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts import sso
from accounts.ratelimits import admin_login_rate_limited


def account(request, *, extra_context: dict | None = None):
    """Who you are, how you signed in, and your groups (marking those that come from SSO).

    ``extra_context`` lets a higher layer add sections, e.g. ``readable_collections``
    (accounts must not import knowledge; see templates/accounts/me.html).
    """
    user = request.user
    names = {
        app.provider_id or app.provider: app.name
        for app in get_social_adapter(request).list_apps(request)
    }
    social_accounts = list(user.socialaccount_set.order_by("provider"))
    from_sso = set()
    for social in social_accounts:
        from_sso.update(sso.sso_granted_groups(social.extra_data or {}))
    context = {
        "signed_in_with": _signed_in_with(request, names),
        "sso_accounts": [
            {"name": names.get(s.provider, s.provider), "uid": s.uid, "last_login": s.last_login}
            for s in social_accounts
        ],
        "groups": [
            {"name": g.name, "from_sso": g.name in from_sso} for g in user.groups.order_by("name")
        ],
        **(extra_context or {}),
    }
    return render(request, "accounts/me.html", context)


def _signed_in_with(request, names: dict) -> str:
    for record in reversed(get_authentication_records(request)):
        if record.get("method") == "socialaccount":
            provider = record.get("provider", "")
            return f"Single sign-on ({names.get(provider, provider)})"
        if record.get("method") == "password":
            return "Email and password"
    return "An earlier session"


@login_not_required
@admin_login_rate_limited
def admin_login(request):
    """The admin's sign-in page: Django's password form only with ADMIN_LOCAL_LOGIN on.

    Otherwise staff sign in like everyone else (single sign-on) and come back to the admin;
    a POST of a password here is refused.
    """
    if settings.ADMIN_LOCAL_LOGIN:
        return admin.site.login(request)
    if request.method != "GET":
        raise PermissionDenied("Password sign-in to the admin is switched off.")
    if request.user.is_authenticated:
        if request.user.is_active and request.user.is_staff:
            return redirect(reverse("admin:index"))
        raise PermissionDenied("Your account may not open the admin.")
    next_url = request.GET.get("next") or reverse("admin:index")
    return redirect(f"{reverse('account_login')}?{urlencode({'next': next_url})}")
