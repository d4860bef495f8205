"""MCP tests' world and clients: the official ``mcp`` client over streamable HTTP (against a
real Daphne) and raw JSON-RPC posts (in-process, for what no well-behaved client sends)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import httpx2
from django.contrib.auth.models import Group
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from knowledge.models import Collection, Source
from knowledge.tokens import token_create
from tests.support.knowledge import HANDBOOK, SECRET_TEXT, index_text, make_collection

# The host in-process requests are addressed to (one of the test settings' ALLOWED_HOSTS).
HOST = "127.0.0.1:8000"
ACCEPT = "application/json, text/event-stream"


@dataclass
class McpWorld:
    """The handbook (open to everyone) and an HR collection with a secret passage.

    ``reader`` reads the handbook only; ``hr_person`` reads both. Tokens: ``reader_token``
    (everything the reader reads), ``hr_token`` (everything), ``hr_narrowed_token`` (the
    handbook only)."""

    reader: object
    hr_person: object
    handbook: Collection
    hr: Collection
    travel: Source
    salaries: Source
    reader_token: str
    hr_token: str
    hr_narrowed_token: str


def mcp_world(make_user) -> McpWorld:
    admin = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    handbook = make_collection("Handbook", everyone=True)
    travel = index_text(handbook, "travel.md", HANDBOOK, user=admin)
    hr_group = Group.objects.create(name="hr")
    hr = make_collection("HR", readers=[hr_group])
    salaries = index_text(hr, "salaries.md", SECRET_TEXT, user=admin)
    reader = make_user(email="reader@example.com")
    hr_person = make_user(email="hr@example.com")
    hr_person.groups.add(hr_group)
    return McpWorld(
        reader=reader,
        hr_person=hr_person,
        handbook=handbook,
        hr=hr,
        travel=travel,
        salaries=salaries,
        reader_token=token_create(user=reader, name="ide")[1],
        hr_token=token_create(user=hr_person, name="ide")[1],
        hr_narrowed_token=token_create(user=hr_person, name="handbook", collections=[handbook])[1],
    )


@contextlib.asynccontextmanager
async def mcp_session(
    url: str, token: str, responses: list | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session to ``url`` (.../mcp) carrying ``token``. ``responses``
    collects each HTTP response's (status, WWW-Authenticate): the client turns an HTTP error
    into a generic one."""
    headers = {"Authorization": f"Bearer {token}"}

    async def record(response) -> None:
        if responses is not None:
            responses.append((response.status_code, response.headers.get("www-authenticate")))

    async with (
        httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(30, read=60),
            event_hooks={"response": [record]},
        ) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def structured(result) -> dict:
    """A tool result's structured content (the tools return JSON objects)."""
    assert not result.is_error, result.content
    return result.structured_content


def error_text(result) -> str:
    assert result.is_error, result.structured_content
    return " ".join(part.text for part in result.content)


def asgi_client() -> httpx.AsyncClient:
    """An HTTP client to the project's ASGI application running in this process."""
    from assistant.project.asgi import application

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(application), base_url=f"http://{HOST}", timeout=60
    )


async def rpc(
    client: httpx.AsyncClient, token: str | None, method: str, params: dict | None = None, **kw
) -> httpx.Response:
    """One JSON-RPC request to /mcp, as a stateless server takes it (no session needed)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    return await post(client, token, json.dumps(body).encode(), **kw)


async def post(
    client: httpx.AsyncClient, token: str | None, body: bytes, *, path: str = "/mcp", headers=None
) -> httpx.Response:
    sent = {"Content-Type": "application/json", "Accept": ACCEPT, **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return await client.post(path, content=body, headers=sent)


async def call_tool(client: httpx.AsyncClient, token: str, name: str, **arguments) -> dict:
    """A tools/call's JSON-RPC ``result`` (``isError``, ``content``, ``structuredContent``)."""
    response = await rpc(client, token, "tools/call", {"name": name, "arguments": arguments})
    assert response.status_code == 200, response.text
    return response.json()["result"]
