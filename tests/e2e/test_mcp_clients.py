"""The MCP server as MCP clients meet it: the official ``mcp`` Python client over streamable
HTTP against one real Daphne (the scripted model behind it). Bad input, the log and the rate
limit run in-process (tests/assistant/test_mcp_server.py); what needs the real server and the
real client is here: the SDK mounted in Daphne without ASGI lifespan, the client's handshake,
every tool, the permissions, and a revocation inside an open session."""

from __future__ import annotations

import httpx2
import pytest
from asgiref.sync import sync_to_async
from mcp.shared.exceptions import MCPError

from accounts.tokens import token_revoke
from assistant.models import Conversation, Message
from assistant.selectors import conversations_of
from tests.support import processes
from tests.support.answering import scripted_env
from tests.support.knowledge import SECRET_QUESTION, SECRET_WORDS
from tests.support.mcp import error_text, mcp_session, mcp_world, structured
from tests.support.openai_server import Reply, ScriptedOpenAI

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOOLS = {"search_knowledge", "ask", "list_collections", "get_source"}


@pytest.fixture(scope="module")
def llm_server():
    # Module-scoped (the shared one is per test): the module's Daphne is started against it.
    with ScriptedOpenAI(default=None) as server:
        yield server


@pytest.fixture(scope="module")
def mcp_url(django_db_setup, django_db_blocker, llm_server):
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne(**scripted_env(llm_server))
    yield f"http://127.0.0.1:{port}/mcp"
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(proc)


@pytest.fixture
async def world(make_user):
    return await sync_to_async(mcp_world)(make_user)


async def test_a_client_lists_the_tools_and_calls_each(mcp_url, world, llm_server):
    llm_server.script(
        Reply(tokens=["Book through the ", "travel desk [1]."]),
        Reply(tokens=["Economy [1]."]),
    )
    async with mcp_session(mcp_url, world.reader_token) as session:
        tools = await session.list_tools()
        assert {tool.name for tool in tools.tools} == TOOLS

        found = structured(await session.call_tool("search_knowledge", {"query": "book flights"}))
        citation = found["passages"][0]["citation"]
        assert "travel desk" in found["passages"][0]["text"]
        assert citation["title"] == "Travel policy" and citation["collection"] == "Handbook"
        assert citation["link"].startswith(mcp_url.removesuffix("/mcp") + "/knowledge/sources/")

        listed = structured(await session.call_tool("list_collections", {}))
        assert listed["collections"] == [{"name": "Handbook", "description": "", "sources": 1}]

        source = structured(
            await session.call_tool("get_source", {"source_id": citation["source_id"]})
        )
        assert source["title"] == "Travel policy" and "fourteen days" in source["text"]

        answer = structured(await session.call_tool("ask", {"question": "How do I book a flight?"}))
        assert answer["answer"] == "Book through the travel desk [1]."
        assert [(c["number"], c["title"]) for c in answer["citations"]] == [(1, "Travel policy")]

        follow_up = structured(
            await session.call_tool(
                "ask",
                {"question": "Which class?", "conversation_id": answer["conversation_id"]},
            )
        )
        assert follow_up["conversation_id"] == answer["conversation_id"]
    # Stored like any answer, with the door as origin, in the person's history.
    conversation = await Conversation.objects.aget(pk=answer["conversation_id"])
    assert conversation.origin == "api"
    mine = await sync_to_async(lambda: list(conversations_of(world.reader)))()
    assert mine == [conversation]
    assert await Message.objects.filter(conversation=conversation).acount() == 4
    assert llm_server.pending == 0


async def test_a_person_without_access_gets_nothing_from_a_restricted_collection(
    mcp_url, world, llm_server
):
    async with mcp_session(mcp_url, world.reader_token) as session:
        search = await session.call_tool("search_knowledge", {"query": SECRET_QUESTION})
        assert SECRET_WORDS not in str(search.structured_content)
        source = await session.call_tool("get_source", {"source_id": world.salaries.pk})
        missing = await session.call_tool("get_source", {"source_id": 10**9})
        assert error_text(source) == error_text(missing)
        named = await session.call_tool(
            "search_knowledge", {"query": SECRET_QUESTION, "collections": ["HR"]}
        )
        assert "No collection this token can read is called 'HR'" in error_text(named)
        # No reply is scripted: with nothing relevant the model is not asked at all, and if it
        # were, its prompt is what matters (checked below), not its (failed) reply.
        answer = await session.call_tool("ask", {"question": SECRET_QUESTION})
        assert SECRET_WORDS not in str(answer.content)
    assert all(SECRET_WORDS not in str(r.body) for r in llm_server.chat_requests)
    stored = await Message.objects.aget(conversation__owner=world.reader, role="assistant")
    assert {s["collection_id"] for s in stored.sources} <= {world.handbook.pk}
    async with mcp_session(mcp_url, world.hr_token) as session:
        # The HR person's own token does find it: the passage was there to be found.
        search = await session.call_tool("search_knowledge", {"query": SECRET_QUESTION})
        assert SECRET_WORDS in str(search.structured_content)


async def test_a_narrowed_token_gets_nothing_outside_its_narrowing(mcp_url, world):
    async with mcp_session(mcp_url, world.hr_narrowed_token) as session:
        search = await session.call_tool("search_knowledge", {"query": SECRET_QUESTION})
        assert SECRET_WORDS not in str(search.structured_content)
        source = await session.call_tool("get_source", {"source_id": world.salaries.pk})
        assert "No such source." in error_text(source)
        listed = structured(await session.call_tool("list_collections", {}))
        assert [c["name"] for c in listed["collections"]] == ["Handbook"]


async def test_a_revoked_token_is_refused_mid_session(mcp_url, world):
    responses = []
    async with mcp_session(mcp_url, world.reader_token, responses) as session:
        structured(await session.call_tool("list_collections", {}))
        token = await world.reader.access_tokens.aget()
        await sync_to_async(token_revoke)(actor=world.reader, token=token)
        with pytest.raises(MCPError):
            await session.call_tool("list_collections", {})
    status, challenge = responses[-1]
    assert status == 401
    assert 'error="invalid_token"' in challenge and "revoked" in challenge


async def test_a_wrong_token_gets_401_with_a_bearer_challenge(mcp_url, world):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream", "Authorization": "Bearer nope"}
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(mcp_url, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="assistant"')
    assert response.json()["reason"] == "malformed"
