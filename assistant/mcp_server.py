"""The MCP door (``/mcp``, streamable HTTP): the assistant's knowledge as MCP tools for IDE
agents and other MCP clients, through the official ``mcp`` SDK.

A door like the others: it authenticates, checks the arguments, calls one selector or service
and shapes the result. Four tools: ``search_knowledge``, ``ask``, ``list_collections`` and
``get_source``; each acts as the token's owner within the token's collections
(``knowledge.tokens.TokenAuth.collection_ids``), so it never reads more than the browser would.

Stateless streamable HTTP with JSON responses: every POST carries one JSON-RPC message and is
served on its own, with no session kept in this process. So several Daphnes behind a load
balancer need no sticky sessions, a restart loses nothing, and a token is checked on every
request (a revocation applies to the very next call of an open client). ``ask`` returns a whole
answer (with its citations) in one response; nothing is pushed from the server.

Daphne runs no ASGI lifespan, so the SDK's session manager (whose task group serves each
request) is started on the first request of an event loop and kept for the loop's life
(``_ManagerRunner``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, Q
from django.http.request import split_domain_port, validate_host
from django.urls import reverse
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, Field

from accounts.tokens import contains_token
from assistant import answering_once, services
from assistant.models import Conversation
from assistant.project.threads import db
from knowledge.models import Collection, Source
from knowledge.retrieval import search_chunks_for_user
from knowledge.selectors import collections_readable_by, source_get_readable
from knowledge.tokens import QUERY_TOKEN_PARAMS, TokenAuth, TokenError, aauthenticate

logger = logging.getLogger("assistant.mcp")

MAX_BODY_BYTES = 64 * 1024  # one JSON-RPC message; a question is at most a few KB
SEARCH_MAX_K = 20
SEARCH_DEFAULT_K = 5
MAX_COLLECTION_NAMES = 50
SOURCE_MAX_CHARS = 100_000  # get_source's text; longer documents are cut and say so
RATE_LIMIT_WINDOW_SECONDS = 60  # the chat limiter's window (services.rate_limit_check)
_AUTH_KEY = "assistant.token_auth"  # where the ASGI scope carries the request's TokenAuth

INSTRUCTIONS = (
    "The company's internal knowledge assistant. search_knowledge finds passages with their "
    "citations; ask answers a question from them, citing [n]; list_collections shows what this "
    "token may read; get_source returns one document. Everything is limited to what the "
    "token's owner may read."
)


# --- results (their JSON schemas are the tools' output schemas) ------------------------------


class Citation(BaseModel):
    """Where a passage comes from: enough to show it and to open it."""

    title: str = Field(description="The document's title.")
    source: str = Field(description="The source's file name or address.")
    url: str = Field(description="The source's own web address (empty for an uploaded file).")
    link: str = Field(description="The passage in the assistant's own source page.")
    heading: str = Field(description="The section holding the passage (' › ' between levels).")
    page: int | None = Field(description="The page in a PDF, when known.")
    collection: str = Field(description="The collection the source belongs to.")
    source_id: int = Field(description="For get_source.")
    chunk_id: int


class Passage(BaseModel):
    text: str
    score: float = Field(description="Relevance, higher is better (comparable within one search).")
    citation: Citation


class SearchResults(BaseModel):
    passages: list[Passage]


class AnswerCitation(Citation):
    number: int = Field(description="The [n] marker in the answer's text.")
    quote: str = Field(description="The passage the answer cites.")


class Answer(BaseModel):
    answer: str = Field(description="The answer, with [n] markers for its citations.")
    citations: list[AnswerCitation]
    conversation_id: str = Field(description="Pass it to ask again to continue this conversation.")
    message_id: str | None


class CollectionInfo(BaseModel):
    name: str
    description: str
    sources: int = Field(description="How many sources are ready to search.")


class Collections(BaseModel):
    collections: list[CollectionInfo]


class SourceDocument(BaseModel):
    source_id: int
    name: str
    title: str
    collection: str
    kind: str
    url: str
    link: str
    status: str
    indexed_at: str | None
    text: str = Field(description=f"The document's text (at most {SOURCE_MAX_CHARS:,} characters).")
    truncated: bool


# --- the tools ------------------------------------------------------------------------------

server = MCPServer("assistant", instructions=INSTRUCTIONS)


def _auth(ctx: Context) -> TokenAuth:
    # Set by McpApp before the SDK sees the request; a tool is never reached without it.
    return ctx.request_context.request.scope[_AUTH_KEY]


def _base_url(ctx: Context) -> str:
    request = ctx.request_context.request
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def _checked_text(value: str, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ToolError(f"The {what} is empty: give a few words to look for.")
    limit = settings.CHAT_MAX_QUESTION_CHARS
    if len(value) > limit:
        raise ToolError(
            f"A {what} can be at most {limit:,} characters; this one has {len(value):,}."
        )
    return text


async def _logged(ctx: Context, tool: str, call: Callable[[TokenAuth], Awaitable[Any]]) -> Any:
    """Runs a tool as the request's token, with one log line per call (the token's prefix,
    never the token): ``ok``, ``refused`` (a ToolError, with its message) or ``crashed``."""
    auth = _auth(ctx)
    started = time.perf_counter()
    outcome = "ok"
    try:
        return await call(auth)
    except ToolError:
        outcome = "refused"
        raise
    except Exception:
        outcome = "crashed"
        raise
    finally:
        logger.info(
            "mcp tool call",
            extra={
                "tool": tool,
                "token_prefix": auth.prefix,
                "user_id": auth.user.pk,
                "outcome": outcome,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )


def _rate_limited(error: services.RateLimited) -> ToolError:
    return ToolError(f"{error} Retry after {RATE_LIMIT_WINDOW_SECONDS} seconds.")


def _scope_by_name(auth: TokenAuth) -> dict[str, int]:
    return dict(
        collections_readable_by(auth.user)
        .filter(id__in=auth.collection_ids)
        .values_list("name", "id")
    )


def _collection_names(ids) -> dict[int, str]:
    return dict(Collection.objects.filter(id__in=set(ids)).values_list("id", "name"))


def _link(base: str, source_id: int, chunk_id: int | None = None) -> str:
    path = reverse("knowledge:source_detail", args=[source_id])
    if chunk_id is None:
        return base + path
    return f"{base}{path}?chunk={chunk_id}#chunk-{chunk_id}"


def _search(auth: TokenAuth, query: str, names: list[str] | None, k: int, base: str):
    scope = set(auth.collection_ids)
    if names is not None:
        by_name = _scope_by_name(auth)
        unknown = sorted({n for n in names if n not in by_name})
        if unknown:
            # A collection outside the token and a missing one get the same answer.
            raise ToolError(
                "No collection this token can read is called "
                + ", ".join(map(repr, unknown))
                + ". list_collections shows the ones it can."
            )
        scope &= {by_name[n] for n in names}
    services.rate_limit_check(user=auth.user)
    result = search_chunks_for_user(user=auth.user, query=query, k=k, collection_ids=sorted(scope))
    titles = _collection_names(h.collection_id for h in result.hits)
    return SearchResults(
        passages=[
            Passage(
                text=hit.text,
                score=round(hit.score, 4),
                citation=Citation(
                    title=hit.document_title,
                    source=hit.source_name,
                    url=hit.source_url,
                    link=_link(base, hit.source_id, hit.chunk_id),
                    heading=hit.heading,
                    page=hit.page,
                    collection=titles.get(hit.collection_id, ""),
                    source_id=hit.source_id,
                    chunk_id=hit.chunk_id,
                ),
            )
            for hit in result.hits
        ]
    )


@server.tool(
    description="Search the company's knowledge for passages about a query. Each passage comes "
    "with its citation (title, source, URL, heading, page, collection). `collections` (names "
    "from list_collections) narrows the search; `k` is how many passages (1-20)."
)
async def search_knowledge(
    query: str, ctx: Context, collections: list[str] | None = None, k: int = SEARCH_DEFAULT_K
) -> SearchResults:
    text = _checked_text(query, "query")
    if isinstance(k, bool) or not 1 <= k <= SEARCH_MAX_K:
        raise ToolError(f"k is how many passages to return: a number from 1 to {SEARCH_MAX_K}.")
    if collections is not None and len(collections) > MAX_COLLECTION_NAMES:
        raise ToolError(f"Name at most {MAX_COLLECTION_NAMES} collections.")
    base = _base_url(ctx)

    async def call(auth: TokenAuth) -> SearchResults:
        try:
            return await db(_search)(auth, text, collections, k, base)
        except services.RateLimited as error:
            raise _rate_limited(error) from None

    return await _logged(ctx, "search_knowledge", call)


def _answer_citations(cited: list[dict], base: str) -> list[AnswerCitation]:
    titles = _collection_names(c["collection_id"] for c in cited)
    return [
        AnswerCitation(
            number=c["n"],
            quote=c["text"],
            title=c.get("title") or "",
            source=c.get("source_name") or "",
            url=c.get("url") or "",
            link=_link(base, c["source_id"], c["chunk_id"]),
            heading=c.get("heading") or "",
            page=c.get("page"),
            collection=titles.get(c["collection_id"], ""),
            source_id=c["source_id"],
            chunk_id=c["chunk_id"],
        )
        for c in cited
    ]


@server.tool(
    description="Ask the assistant a question. It answers from the company's knowledge that "
    "you may read, citing passages with [n] markers, and returns the citations. The "
    "conversation is kept in your history; pass its conversation_id to ask a follow-up."
)
async def ask(question: str, ctx: Context, conversation_id: str | None = None) -> Answer:
    text = _checked_text(question, "question")
    base = _base_url(ctx)

    async def call(auth: TokenAuth) -> Answer:
        try:
            done = await answering_once.ask_to_completion(
                user=auth.user,
                text=text,
                collection_ids=sorted(auth.collection_ids),
                conversation_id=conversation_id,
                origin=Conversation.Origin.API,
            )
        except Conversation.DoesNotExist:
            raise ToolError("No such conversation.") from None
        except services.RateLimited as error:
            raise _rate_limited(error) from None
        except services.ChatError as error:  # busy, and the other refusals people can act on
            raise ToolError(str(error)) from None
        if done.status != "complete":
            said = done.error or "The answer could not be written. Try again shortly."
            if done.text:  # stored with the conversation; the agent gets it too
                said += f"\n\nWhat was written before it stopped:\n{done.text}"
            raise ToolError(said)
        return Answer(
            answer=done.text,
            citations=await db(_answer_citations)(done.cited, base),
            conversation_id=done.conversation_id,
            message_id=done.message_id,
        )

    return await _logged(ctx, "ask", call)


def _collections(auth: TokenAuth) -> Collections:
    rows = (
        collections_readable_by(auth.user)
        .filter(id__in=auth.collection_ids)
        .annotate(ready=Count("sources", filter=Q(sources__status=Source.Status.READY)))
        .order_by("name")
    )
    return Collections(
        collections=[
            CollectionInfo(name=c.name, description=c.description, sources=c.ready) for c in rows
        ]
    )


@server.tool(description="List the collections of knowledge this token can read.")
async def list_collections(ctx: Context) -> Collections:
    async def call(auth: TokenAuth) -> Collections:
        return await db(_collections)(auth)

    return await _logged(ctx, "list_collections", call)


def _source(auth: TokenAuth, source_id: int, base: str) -> SourceDocument:
    source = source_get_readable(user=auth.user, source_id=source_id)
    if source.collection_id not in auth.collection_ids:
        # Readable by the person but outside the token's narrowing: not found, like a missing id.
        raise Source.DoesNotExist
    document = getattr(source, "document", None)
    text = document.text if document is not None else ""
    return SourceDocument(
        source_id=source.pk,
        name=source.name,
        title=document.title if document is not None else source.name,
        collection=source.collection.name,
        kind=source.kind,
        url=source.url,
        link=_link(base, source.pk),
        status=source.status,
        indexed_at=source.indexed_at.isoformat() if source.indexed_at else None,
        text=text[:SOURCE_MAX_CHARS],
        truncated=len(text) > SOURCE_MAX_CHARS,
    )


@server.tool(
    description="Get one source (a document) by its source_id, as found in a citation: its "
    "title, collection, address and text."
)
async def get_source(source_id: int, ctx: Context) -> SourceDocument:
    if isinstance(source_id, bool) or not 1 <= source_id < 2**63:
        raise ToolError("No such source.")
    base = _base_url(ctx)

    async def call(auth: TokenAuth) -> SourceDocument:
        try:
            return await db(_source)(auth, source_id, base)
        except ObjectDoesNotExist:
            raise ToolError("No such source.") from None

    return await _logged(ctx, "get_source", call)


# --- HTTP: the token, the host, then the SDK ---------------------------------------------------


class _ManagerRunner:
    """The SDK's session manager, running for the life of the event loop that first needs it.

    Under uvicorn the manager runs in the ASGI lifespan; Daphne sends no lifespan events, so
    the first request starts it as a task of its own and later requests reuse it. A new loop
    (tests run one per test) gets a new manager: a manager runs once, on one loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._manager: StreamableHTTPSessionManager | None = None
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def manager(self) -> StreamableHTTPSessionManager:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            # Set before any await, so concurrent first requests share one manager.
            self._loop, self._ready = loop, asyncio.Event()
            # Builds a new session manager (the Starlette app around it is not used: McpApp
            # routes and authenticates). Host and Origin are checked by McpApp against the
            # project's settings, so the SDK's localhost-only check stays off.
            server.streamable_http_app(
                stateless_http=True,
                json_response=True,
                max_request_body_size=MAX_BODY_BYTES,
                transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            )
            self._manager = server.session_manager
            self._task = loop.create_task(self._run(self._manager, self._ready))
        await self._ready.wait()
        return self._manager

    @staticmethod
    async def _run(manager: StreamableHTTPSessionManager, ready: asyncio.Event) -> None:
        async with manager.run():
            ready.set()
            await asyncio.Event().wait()  # until the loop ends


_runner = _ManagerRunner()


async def _send_json(send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()):
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _origin_allowed(origin: str, scope, host: str) -> bool:
    own = f"{scope.get('scheme', 'http')}://{host}".lower()
    allowed = {o.lower().rstrip("/") for o in settings.WEBSOCKET_ALLOWED_ORIGINS}
    return origin.lower().rstrip("/") in allowed | {own}


def _token_in_query(scope) -> bool:
    query = (scope.get("query_string") or b"").decode("latin-1")
    names = parse_qs(query, keep_blank_values=True).keys()
    return any(n in QUERY_TOKEN_PARAMS for n in names) or contains_token(query)


class McpApp:
    """The ASGI app mounted at ``/mcp``: checks the Host (Django's ``ALLOWED_HOSTS``), refuses a
    token in the address, authenticates the bearer token on every request, then hands the
    request to the SDK's session manager with the ``TokenAuth`` in its scope.

    A refused token gets MCP's authentication error (the MCP spec's authorization section,
    RFC 6750): HTTP 401, ``WWW-Authenticate: Bearer`` with ``error`` and
    ``error_description``, and the same in a JSON body with the token's ``reason``. The SDK's
    own ``TokenVerifier`` hook was not used: its 401 says only "Authentication required" (a
    revoked token looks like a typo) and it needs OAuth settings (an issuer) we do not have."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        host = _header(scope, b"host") or ""
        domain, _port = split_domain_port(host)
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            await _send_json(
                send, 400, {"error": "invalid_request", "error_description": "Bad host."}
            )
            return
        origin = _header(scope, b"origin")
        if origin is not None and not _origin_allowed(origin, scope, host):
            # A page in a browser (DNS rebinding, a hostile site): the MCP spec asks servers to
            # check Origin. Non-browser clients send none; the app's own pages may.
            await _send_json(
                send, 403, {"error": "invalid_request", "error_description": "Bad origin."}
            )
            return
        if _token_in_query(scope):
            logger.info("token in query string refused", extra={"path": scope.get("path")})
            await _send_json(
                send,
                400,
                {
                    "error": "invalid_request",
                    "error_description": "Tokens are accepted only in the 'Authorization: "
                    "Bearer' header, never in the address. Revoke this token: addresses are "
                    "logged.",
                    "reason": "token_in_query",
                },
            )
            return
        try:
            auth = await aauthenticate(_header(scope, b"authorization"))
        except TokenError as error:
            code = (
                "invalid_request" if error.reason in ("missing", "malformed") else "invalid_token"
            )
            # Headers are ASCII: the description without its "…" and quotes (the body has it whole).
            said = error.message.replace("…", "...").replace('"', "'")
            said = said.encode("ascii", "replace").decode()
            challenge = f'Bearer realm="assistant", error="{code}", error_description="{said}"'
            await _send_json(
                send,
                401,
                {"error": code, "error_description": error.message, "reason": error.reason},
                [(b"www-authenticate", challenge.encode())],
            )
            return
        manager = await _runner.manager()
        await manager.handle_request({**scope, _AUTH_KEY: auth}, receive, send)


application = McpApp()
