"""The token forms of the account page: create one (shown once) and revoke one's own."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import AccessToken
from accounts.tokens import TokenRefused, token_revoke
from knowledge.token_page.selectors import token_get_for_user
from knowledge.tokens import token_create

MAX_COLLECTIONS = 200  # more boxes than any page shows: a forged form, refused as such


def _account() -> HttpResponse:
    return redirect(reverse("account") + "#tokens")


def _ids(values: list[str]) -> list[int]:
    if len(values) > MAX_COLLECTIONS or not all(v.isascii() and v.isdigit() for v in values):
        raise TokenRefused("A token can only be narrowed to collections you can read.")
    return [int(v) for v in values]


def _days(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 5:
        raise TokenRefused("The expiry is a number of days.")
    return int(value)


@require_POST
def token_new(request: HttpRequest) -> HttpResponse:
    """Creates a token from the account page's form and shows it, once, on a page of its own
    (never in a redirect's address or the session: the page is the only copy)."""
    try:
        token, plaintext = token_create(
            user=request.user,
            name=request.POST.get("name", ""),
            collections=_ids(request.POST.getlist("collections")),
            expires_days=_days(request.POST.get("expires_days", "")),
        )
    except TokenRefused as refused:
        messages.error(request, f"No token was created: {refused}")
        return _account()
    response = render(
        request,
        "knowledge/token_created.html",
        {"token": token, "plaintext": plaintext, "scope": _scope(token)},
    )
    # The secret must not linger in a cache or the back button's copy of the page.
    response["Cache-Control"] = "no-store"
    return response


def _scope(token: AccessToken) -> str:
    if not token.narrowed:
        return "everything you can read"
    return ", ".join(sorted(c.name for c in token.collections.all()))


@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = token_get_for_user(user=request.user, token_id=token_id)
    except AccessToken.DoesNotExist:
        raise Http404("No such token.") from None
    token_revoke(actor=request.user, token=token)
    messages.success(
        request, f"“{token.name}” is revoked: anything still using it is refused from now on."
    )
    return _account()
