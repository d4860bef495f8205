"""Personal access tokens: the credential itself (format, hash, verification, revocation).

This module knows nothing of knowledge (accounts sits on the lowest floor). The doors call
``knowledge.tokens``, which adds the one rule that needs knowledge: a token reads only the
collections its owner may read now, narrowed to its chosen ones. Creating a token with a
narrowing lives there too, since refusing a collection wider than the person needs knowledge.

Format: ``ast_`` + 43 URL-safe characters (256 random bits). The fixed prefix lets secret
scanners find a leaked token. The database keeps only the SHA-256 of the whole token (a random
256-bit secret needs no slow hash: nobody can guess their way to it) and its first
``PREFIX_CHARS`` characters, for people to tell their tokens apart.

Tokens are taken from the ``Authorization: Bearer`` header only, never from a query string
(query strings end up in proxy logs, browser history and Referer headers): ``token_verify``
takes the header's value and nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import timedelta
from urllib.parse import unquote_plus

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts.audit import Action, audit_record
from accounts.models import AccessToken

logger = logging.getLogger("assistant.tokens")

TOKEN_PREFIX = "ast_"  # noqa: S105 - a public marker for secret scanners, not a secret
_SECRET_BYTES = 32  # 256 bits -> 43 URL-safe characters
PREFIX_CHARS = 12  # "ast_" + 8 characters of the secret: shown, never enough to use it
_TOKEN_RE = re.compile(r"ast_[A-Za-z0-9_-]{43}")
_TOKEN_SHAPE_RE = re.compile(r"(?<![A-Za-z0-9])ast_[A-Za-z0-9_-]{16,}")
# A real header is "Bearer " + 47 characters; anything much longer is refused before any work.
MAX_HEADER_CHARS = 200
MAX_SCAN_CHARS = 8192  # query strings longer than this are refused by the web server anyway
NAME_MAX_CHARS = AccessToken._meta.get_field("name").max_length
MAX_EXPIRES_DAYS = 3650
# last_used_at is for people ("used 3 minutes ago"), not an audit: one write a minute at most,
# so a busy script does not turn every request into an UPDATE.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(Exception):
    """Why a request's token was refused. ``reason`` is one of ``REASONS``; doors map it to
    their own error shape (HTTP 401 JSON for /v1, MCP's auth error for /mcp) and may show
    ``message`` (written for people) as is."""

    MESSAGES = {
        "missing": "This needs a personal access token: send 'Authorization: Bearer <token>'.",
        "malformed": "That is not a personal access token: send 'Authorization: Bearer ast_…'.",
        "invalid": "This token is not known. Check it was copied whole, or create a new one.",
        "revoked": "This token was revoked. Create a new one on your account page.",
        "expired": "This token has expired. Create a new one on your account page.",
        "inactive": "The account this token belongs to is deactivated.",
        "owner_away": "The account this token belongs to has not signed in for too long "
        "(TOKEN_OWNER_SIGN_IN_DAYS): sign in to the assistant again, and the token works again.",
    }
    REASONS = ("missing", "malformed", "invalid", "revoked", "expired", "inactive", "owner_away")

    def __init__(self, reason: str):
        assert reason in self.REASONS, reason
        self.reason = reason
        self.message = self.MESSAGES[reason]
        super().__init__(self.message)


class TokenRefused(ValueError):
    """A token could not be created as asked (bad name, expiry or collections); the message
    is for people."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_generate() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise TokenRefused("Give the token a name, so you can tell it apart later.")
    if len(name) > NAME_MAX_CHARS:
        raise TokenRefused(f"A token's name can be at most {NAME_MAX_CHARS} characters.")
    return name


def _expiry(expires_days: int | None):
    if expires_days is None:
        return None
    if isinstance(expires_days, bool) or not isinstance(expires_days, int):
        raise TokenRefused("The expiry is a number of days.")
    if not 1 <= expires_days <= MAX_EXPIRES_DAYS:
        raise TokenRefused(f"A token can expire in 1 to {MAX_EXPIRES_DAYS} days.")
    return timezone.now() + timedelta(days=expires_days)


@transaction.atomic
def token_row_create(
    *, user, name: str, collection_ids: list[int] | None = None, expires_days: int | None = None
) -> tuple[AccessToken, str]:
    """Stores a new token for ``user`` and returns it with its plaintext (shown once, never
    kept). Precondition: ``collection_ids`` were checked to be readable by ``user``; doors
    call ``knowledge.tokens.token_create``, which checks them, never this directly.

    ``collection_ids=None`` (or empty) = not narrowed: everything the person can read."""
    if not user.is_active:
        raise TokenRefused("A deactivated account cannot get a token.")
    clean = _clean_name(name)
    expires_at = _expiry(expires_days)
    plaintext = token_generate()
    token = AccessToken.objects.create(
        owner=user,
        name=clean,
        prefix=plaintext[:PREFIX_CHARS],
        secret_hash=token_hash(plaintext),
        narrowed=bool(collection_ids),
        expires_at=expires_at,
    )
    if collection_ids:
        token.collections.set(sorted(set(collection_ids)))
    audit_record(
        actor=user,
        action=Action.TOKEN_CREATED,
        target=token,
        subject=user,
        detail={
            "prefix": token.prefix,
            "collections": sorted(set(collection_ids or [])),
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    logger.info("token created", extra={"token_prefix": token.prefix, "user_id": user.pk})
    return token, plaintext


def token_revoke(*, actor, token: AccessToken) -> AccessToken:
    """Revokes ``token``: its owner may revoke their own, staff may revoke anyone's.
    Revoking twice is a no-op (and audited once). Raises ``PermissionError`` otherwise."""
    if not (actor.is_active and (actor.pk == token.owner_id or actor.is_staff)):
        raise PermissionError("You can revoke only your own tokens.")
    with transaction.atomic():
        # A conditional UPDATE: two revokes at once record one revocation.
        now = timezone.now()
        changed = AccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if changed:
            audit_record(
                actor=actor,
                action=Action.TOKEN_REVOKED,
                target=token,
                subject=token.owner,
                detail={"prefix": token.prefix},
            )
    token.refresh_from_db(fields=["revoked_at"])
    if changed:
        logger.info(
            "token revoked",
            extra={"token_prefix": token.prefix, "user_id": token.owner_id, "actor_id": actor.pk},
        )
    return token


def contains_token(text: str) -> bool:
    """Whether ``text`` (a query string, a log line) holds something shaped like a token,
    percent-encoded or not. The prefix and 16 more characters are enough (a cut token is
    still a leak); "east_coast" is not a token."""
    return bool(_TOKEN_SHAPE_RE.search(unquote_plus(text[:MAX_SCAN_CHARS])))


def _bearer(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise TokenError("missing")
    if len(authorization) > MAX_HEADER_CHARS:
        raise TokenError("malformed")
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not _TOKEN_RE.fullmatch(value):
        raise TokenError("malformed")
    return value


def token_verify(authorization: str | None) -> AccessToken:
    """The token an ``Authorization`` header's value names, if it may be used now, with its
    ``owner`` loaded; raises ``TokenError`` with the reason otherwise.

    Looked up by the hash of the whole token, so no comparison ever runs on the secret itself
    and a guess's timing says nothing about a real token; the stored hash is compared again in
    constant time. The owner is read now, so a deactivation applies at the next request.
    Records ``last_used_at`` at most once a minute and logs every use with the prefix."""
    plaintext = _bearer(authorization)
    digest = token_hash(plaintext)
    token = AccessToken.objects.select_related("owner").filter(secret_hash=digest).first()
    if token is None or not constant_time_compare(token.secret_hash, digest):
        logger.info(
            "token refused", extra={"token_prefix": plaintext[:PREFIX_CHARS], "reason": "invalid"}
        )
        raise TokenError("invalid")
    now = timezone.now()
    reason = None
    if token.revoked_at is not None:
        reason = "revoked"
    elif token.expires_at is not None and token.expires_at <= now:
        reason = "expired"
    elif not token.owner.is_active:
        reason = "inactive"
    elif _owner_away(token.owner, now):
        reason = "owner_away"
    if reason:
        logger.info(
            "token refused",
            extra={"token_prefix": token.prefix, "user_id": token.owner_id, "reason": reason},
        )
        raise TokenError(reason)
    _touch(token, now)
    logger.info("token used", extra={"token_prefix": token.prefix, "user_id": token.owner_id})
    return token


def _owner_away(owner, now) -> bool:
    """With ``TOKEN_OWNER_SIGN_IN_DAYS`` set, a token works only while its owner has signed in
    (through SSO or a password) within that many days. Someone who left is usually removed at
    the identity provider, which the assistant only learns at a sign-in that never comes: this
    ends their tokens without anyone deactivating the account here."""
    days = settings.TOKEN_OWNER_SIGN_IN_DAYS
    if not days:
        return False
    return owner.last_login is None or owner.last_login < now - timedelta(days=days)


def _touch(token: AccessToken, now) -> None:
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    # Conditional, so concurrent requests of one script write once.
    AccessToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    token.last_used_at = now
