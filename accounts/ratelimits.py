"""Rate limits on password sign-in doors that allauth does not guard itself.

The site's own sign-in form is allauth's, limited by ``ACCOUNT_RATE_LIMITS["login_failed"]``.
Django's admin password form (``/admin/login/`` with ADMIN_LOCAL_LOGIN on) is not, so a guesser
would simply move there. ``admin_login_rate_limited`` applies the same rates with allauth's own
machinery and the same cache keys, so both doors draw on one budget per address and per email.
"""

from __future__ import annotations

from functools import wraps

from allauth.core.internal import ratelimit as allauth_ratelimit
from django.contrib.sites.shortcuts import get_current_site
from django.http import HttpRequest, HttpResponse

LOGIN_FAILED = "login_failed"
_APP = "allauth.account"  # whose RATE_LIMITS setting (ACCOUNT_RATE_LIMITS) applies


def login_failed_key(request: HttpRequest, login: str) -> str:
    """The per-email key allauth counts failed sign-ins under (its adapter's
    ``_get_login_attempts_cache_key``): the same string, so admin and site failures add up."""
    return f"{get_current_site(request).domain}:{login.strip().lower()}"


def admin_login_rate_limited(view):
    """Wraps the admin's sign-in view: a POST over the ``login_failed`` limit gets allauth's
    429 page before any password is checked.

    Like allauth, each attempt is counted before the password is checked (so parallel guesses
    cannot slip past the count) and given back when the sign-in succeeded, so only failures
    add up. (``allauth.core.ratelimit`` offers no give-back; the internal module it wraps does,
    and the allauth version is pinned below 66.)
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        login = request.POST.get("username", "")[:254]
        usage = allauth_ratelimit.consume(
            request, app=_APP, action=LOGIN_FAILED, key=login_failed_key(request, login)
        )
        if usage is None:
            return allauth_ratelimit.respond_429(request)
        response = view(request, *args, **kwargs)
        if _signed_in(request, response):
            usage.rollback()
        return response

    return wrapped


def _signed_in(request: HttpRequest, response: HttpResponse) -> bool:
    # The admin's LoginView redirects only after a successful login(); a refused password (or
    # an account that may not use the admin) re-renders the form.
    return response.status_code in (301, 302, 303) and request.user.is_authenticated
