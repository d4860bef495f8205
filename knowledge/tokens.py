"""Personal access tokens at the doors: create one (never wider than the person) and
authenticate a request by its ``Authorization`` header. Every door that takes a token (the
OpenAI-compatible API, the MCP server, a command) calls ``authenticate`` (or
``token_required`` for a Django view) and nothing else.

The credential itself (format, hash, revoke, expiry) lives in ``accounts.tokens``; this module
sits one floor up because a token's reach is a knowledge rule: the collections its owner may
read *now* (``readable_collection_ids``, computed per request, so a group removal or a
deactivation applies at once), intersected with the token's narrowing.

Rate limits: a door calls the chat's shared per-user limiter itself, after authenticating
(``assistant.services.rate_limit_check(user=auth.user)``, which raises ``RateLimited``; the
door answers 429 with ``Retry-After: 60``, the limiter's window). Knowledge cannot import it,
and one limiter means a person's browser, Slack and scripts draw on one budget.

Logging: every use and every refusal is one log line (logger ``assistant.tokens``) with the
token's prefix, never the token; ``last_used_at`` is kept to the minute. Uses are not audit
events: a script would flood the audit table. Creation and revocation are audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.models import AccessToken, User
from accounts.tokens import (
    TokenError,
    TokenRefused,
    contains_token,
    token_row_create,
    token_verify,
)
from assistant.project.threads import db
from knowledge.models import Collection
from knowledge.selectors import collections_readable_by, readable_collection_ids

logger = logging.getLogger("assistant.tokens")

# Query parameters that name a token in common clients; any value shaped like a token counts too.
QUERY_TOKEN_PARAMS = ("token", "access_token", "api_key")

__all__ = [
    "TokenAuth",
    "TokenError",
    "TokenRefused",
    "aauthenticate",
    "authenticate",
    "token_create",
    "token_required",
]


@dataclass(frozen=True)
class TokenAuth:
    """Who a request acts as, and what it may read.

    ``collection_ids`` is the whole scope: pass it on as the narrowing (for the answering
    pipeline, ``collection_ids=sorted(auth.collection_ids)``; an empty set means nothing, never
    "everything")."""

    user: User
    token: AccessToken
    collection_ids: frozenset[int]

    @property
    def prefix(self) -> str:
        return self.token.prefix


def token_create(
    *,
    user,
    name: str,
    collections: Iterable[Collection | int] | None = None,
    collection_names: Iterable[str] | None = None,
    expires_days: int | None = None,
) -> tuple[AccessToken, str]:
    """A new token for ``user`` and its plaintext, to show once (only its hash is stored).

    ``collections`` (instances or ids) or ``collection_names`` narrow it; neither = everything
    the person can read, now and later. Raises ``TokenRefused`` (a message for people) for an
    empty or over-long name, an expiry outside 1..3650 days, or a collection the person cannot
    read, which is refused the same way whether it exists or not. Audited."""
    ids = _narrowing_ids(user=user, collections=collections, names=collection_names)
    return token_row_create(user=user, name=name, collection_ids=ids, expires_days=expires_days)


def _narrowing_ids(*, user, collections, names) -> list[int]:
    ids: set[int] = set()
    readable = set(readable_collection_ids(user))
    for item in collections or ():
        pk = item.pk if isinstance(item, Collection) else item
        if isinstance(pk, bool) or not isinstance(pk, int) or pk not in readable:
            raise TokenRefused("A token can only be narrowed to collections you can read.")
        ids.add(pk)
    wanted = {n.strip() for n in names or () if n.strip()}
    if wanted:
        found = dict(
            collections_readable_by(user).filter(name__in=wanted).values_list("name", "id")
        )
        unknown = sorted(wanted - found.keys())
        if unknown:
            raise TokenRefused(
                "No collection you can read is called " + ", ".join(map(repr, unknown)) + "."
            )
        ids.update(found.values())
    return sorted(ids)


def authenticate(authorization: str | None) -> TokenAuth:
    """The request's identity from its ``Authorization`` header value (``None`` when absent).

    Raises ``TokenError`` whose ``reason`` is ``missing``, ``malformed``, ``invalid``,
    ``revoked``, ``expired``, ``inactive`` or ``owner_away``. Takes the header only: a token in a query string
    or a body is never looked at. Sync (the ORM); async doors call ``aauthenticate``."""
    token = token_verify(authorization)
    allowed = set(readable_collection_ids(token.owner))
    if token.narrowed:
        allowed &= set(token.collections.values_list("id", flat=True))
    return TokenAuth(user=token.owner, token=token, collection_ids=frozenset(allowed))


async def aauthenticate(authorization: str | None) -> TokenAuth:
    # The project's one async door to the ORM (own thread, own transaction).
    return await db(authenticate)(authorization)


def unauthorized_response(error: TokenError) -> JsonResponse:
    """The 401 a Django view answers a refused token with (never a redirect to sign-in)."""
    response = JsonResponse(
        {
            "error": {
                "message": error.message,
                "type": "invalid_request_error",
                "param": None,
                "code": error.reason,
            }
        },
        status=401,
    )
    # RFC 6750: say which scheme, and why, so clients know to change the token, not retry.
    code = "invalid_request" if error.reason in ("missing", "malformed") else "invalid_token"
    response["WWW-Authenticate"] = f'Bearer realm="assistant", error="{code}"'
    return response


def token_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wraps a Django view: the request must carry a valid bearer token; the view then finds
    ``request.token_auth`` (a ``TokenAuth``) and ``request.user`` set to its owner. A refused
    token gets a JSON 401 with ``WWW-Authenticate: Bearer`` (OpenAI's error shape, ``code`` =
    the reason). CSRF-exempt: no cookie authenticates these requests, so there is nothing for
    a forged cross-site request to ride on. A session cookie is ignored.

    A ``token``/``access_token``/``api_key`` query parameter, or anything shaped like a token
    in the query string, is refused with 400 even beside a good header: the token has already
    leaked into access logs, and the caller must learn it. Never a sign-in redirect
    (``login_not_required``: the token is the sign-in)."""

    @login_not_required
    @csrf_exempt
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if any(key in request.GET for key in QUERY_TOKEN_PARAMS) or contains_token(query):
            logger.info("token in query string refused", extra={"path": request.path})
            return JsonResponse(
                {
                    "error": {
                        "message": "Tokens are accepted only in the 'Authorization: Bearer' "
                        "header, never in the address. Revoke this token: addresses are logged.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "token_in_query",
                    }
                },
                status=400,
            )
        try:
            auth = authenticate(request.headers.get("Authorization"))
        except TokenError as error:
            return unauthorized_response(error)
        request.token_auth = auth
        request.user = auth.user
        return view(request, *args, **kwargs)

    return wrapped
