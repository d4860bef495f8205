"""Reads for the token section of the account page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.timesince import timesince

from accounts.models import AccessToken
from knowledge.selectors import readable_collection_ids


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    prefix: str
    scope: str  # "Everything you can read" or the collections' names
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    state: str  # "active", "expired" or "revoked"

    @property
    def active(self) -> bool:
        return self.state == "active"

    @property
    def last_used_label(self) -> str:
        # Uses are recorded to the minute (accounts.tokens.LAST_USED_RESOLUTION).
        if self.last_used_at is None:
            return "Never"
        if timezone.now() - self.last_used_at < timedelta(minutes=1):
            return "In the last minute"
        return f"{timesince(self.last_used_at)} ago"


def token_get_for_user(*, user, token_id: int) -> AccessToken:
    """One of ``user``'s own tokens; someone else's or a missing one: ``DoesNotExist`` (the
    page is for one's own tokens only, staff included: the admin revokes other people's)."""
    return AccessToken.objects.get(pk=token_id, owner=user)


def token_rows_for(user) -> list[TokenRow]:
    """``user``'s tokens, newest first, as the account page lists them. A narrowed token's
    scope names only the collections the person still reads (the others are counted), so the
    list never shows the name of a collection they lost."""
    readable = set(readable_collection_ids(user))
    now = timezone.now()
    rows = []
    for token in AccessToken.objects.filter(owner=user).prefetch_related("collections"):
        rows.append(
            TokenRow(
                id=token.pk,
                name=token.name,
                prefix=token.prefix,
                scope=_scope(token, readable),
                created_at=token.created_at,
                last_used_at=token.last_used_at,
                expires_at=token.expires_at,
                state=_state(token, now),
            )
        )
    return rows


def _scope(token: AccessToken, readable: set[int]) -> str:
    if not token.narrowed:
        return "Everything you can read"
    collections = sorted(token.collections.all(), key=lambda c: c.name.lower())
    names = [c.name for c in collections if c.pk in readable]
    lost = len(collections) - len(names)
    if lost:
        names.append(f"{lost} you can no longer read")
    return ", ".join(names) or "Nothing (its collections were deleted)"


def _state(token: AccessToken, now) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"
