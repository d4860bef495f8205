"""The MCP door in-process (the project's ASGI app through httpx): authentication, bad input,
another person's ids, the rate limit and the log. Each request is raw JSON-RPC, as a
stateless server takes it; the official client against a real Daphne is in
tests/e2e/test_mcp_clients.py."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from accounts.tokens import PREFIX_CHARS, token_revoke
from assistant.models import Conversation, Message
from assistant.project.threads import db
from tests.support.answering import scripted_settings
from tests.support.knowledge import SECRET_QUESTION, SECRET_WORDS
from tests.support.mcp import asgi_client, call_tool, mcp_world, post, rpc
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def world(make_user):
    return await sync_to_async(mcp_world)(make_user)


@pytest.fixture
async def client():
    async with asgi_client() as http:
        yield http


def tool_error(result: dict) -> str:
    """A tool error's message, without the SDK's "Error executing tool <name>: " prefix."""
    assert result["isError"] is True, result
    return " ".join(part["text"] for part in result["content"]).split(": ", 1)[-1]


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing"),
        ("sk-not-ours", "malformed"),
        ("ast_" + "x" * 43, "invalid"),
    ],
)
async def test_a_wrong_token_gets_mcps_auth_error(world, client, token, reason):
    response = await rpc(client, token, "tools/list")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="assistant", error="invalid_')
    body = response.json()
    assert body["reason"] == reason and body["error_description"]


async def test_a_revoked_token_is_refused_at_the_next_request(world, client):
    assert (await rpc(client, world.reader_token, "tools/list")).status_code == 200
    token = await db(lambda: world.reader.access_tokens.get())()
    await db(token_revoke)(actor=world.reader, token=token)
    response = await rpc(client, world.reader_token, "tools/list")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.json()["reason"] == "revoked"


@pytest.mark.parametrize("query", ["?token={t}", "?access_token={t}", "?x={t}"])
async def test_a_token_in_the_query_string_is_refused_even_beside_a_good_header(
    world, client, query
):
    path = "/mcp" + query.format(t=world.reader_token)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    response = await post(client, world.reader_token, body, path=path)
    assert response.status_code == 400
    assert response.json()["reason"] == "token_in_query"


async def test_a_request_for_a_foreign_host_is_refused(world, client):
    response = await rpc(client, world.reader_token, "tools/list", headers={"Host": "evil.example"})
    assert response.status_code == 400


async def test_a_page_from_another_origin_is_refused(world, client):
    evil = await rpc(
        client, world.reader_token, "tools/list", headers={"Origin": "http://evil.example"}
    )
    assert evil.status_code == 403
    own = await rpc(
        client, world.reader_token, "tools/list", headers={"Origin": "http://127.0.0.1:8000"}
    )
    assert own.status_code == 200


async def test_a_session_cookie_does_not_stand_in_for_a_token(world, client):
    from tests.support.sessions import session_cookie_for

    cookie = await sync_to_async(session_cookie_for)(world.reader)
    response = await rpc(client, None, "tools/list", headers={"Cookie": cookie})
    assert response.status_code == 401


# --- the tools, in-process --------------------------------------------------------------------


async def test_tools_list_names_the_four_tools_with_their_schemas(world, client):
    response = await rpc(client, world.reader_token, "tools/list")
    tools = {tool["name"]: tool for tool in response.json()["result"]["tools"]}
    assert set(tools) == {"search_knowledge", "ask", "list_collections", "get_source"}
    assert tools["search_knowledge"]["inputSchema"]["required"] == ["query"]
    assert "passages" in tools["search_knowledge"]["outputSchema"]["properties"]


async def test_search_returns_passages_with_citations_in_the_tokens_reach(world, client):
    result = await call_tool(client, world.reader_token, "search_knowledge", query="book flights")
    passages = result["structuredContent"]["passages"]
    assert passages and "travel desk" in passages[0]["text"]
    citation = passages[0]["citation"]
    assert citation["title"] == "Travel policy" and citation["collection"] == "Handbook"
    assert citation["source"] == "travel.md" and citation["heading"]
    assert citation["link"] == (
        f"http://127.0.0.1:8000/knowledge/sources/{world.travel.pk}/"
        f"?chunk={citation['chunk_id']}#chunk-{citation['chunk_id']}"
    )


async def test_a_person_without_access_finds_nothing_of_a_restricted_collection(world, client):
    result = await call_tool(client, world.reader_token, "search_knowledge", query=SECRET_QUESTION)
    assert SECRET_WORDS not in json.dumps(result)
    # The same search with the HR person's token does find it: the passage is there to find.
    found = await call_tool(client, world.hr_token, "search_knowledge", query=SECRET_QUESTION)
    assert SECRET_WORDS in json.dumps(found)


async def test_another_persons_source_is_not_found_like_a_missing_one(world, client):
    theirs = await call_tool(client, world.reader_token, "get_source", source_id=world.salaries.pk)
    missing = await call_tool(client, world.reader_token, "get_source", source_id=10**9)
    assert tool_error(theirs) == tool_error(missing) == "No such source."
    own = await call_tool(client, world.hr_token, "get_source", source_id=world.salaries.pk)
    assert SECRET_WORDS in own["structuredContent"]["text"]


async def test_a_narrowed_token_reads_nothing_outside_its_collections(world, client):
    token = world.hr_narrowed_token
    search = await call_tool(client, token, "search_knowledge", query=SECRET_QUESTION)
    assert SECRET_WORDS not in json.dumps(search)
    source = await call_tool(client, token, "get_source", source_id=world.salaries.pk)
    assert tool_error(source) == "No such source."
    listed = await call_tool(client, token, "list_collections")
    assert [c["name"] for c in listed["structuredContent"]["collections"]] == ["Handbook"]
    named = await call_tool(client, token, "search_knowledge", query="salary", collections=["HR"])
    assert "No collection this token can read is called 'HR'" in tool_error(named)


async def test_collection_names_narrow_a_search_and_never_widen_it(world, client):
    narrowed = await call_tool(
        client, world.hr_token, "search_knowledge", query=SECRET_QUESTION, collections=["Handbook"]
    )
    assert SECRET_WORDS not in json.dumps(narrowed)
    assert {p["citation"]["collection"] for p in narrowed["structuredContent"]["passages"]} <= {
        "Handbook"
    }


# --- bad input --------------------------------------------------------------------------------


@override_settings(CHAT_MAX_QUESTION_CHARS=100)
async def test_an_oversized_query_or_question_is_refused_with_the_limit(world, client):
    search = await call_tool(client, world.reader_token, "search_knowledge", query="x" * 101)
    assert "at most 100 characters; this one has 101" in tool_error(search)
    ask = await call_tool(client, world.reader_token, "ask", question="x" * 101)
    assert "at most 100 characters" in tool_error(ask)
    assert not await Message.objects.filter(conversation__owner=world.reader).aexists()


@pytest.mark.parametrize("k", [0, 21, -1, 10**12])
async def test_k_out_of_range_is_refused(world, client, k):
    result = await call_tool(client, world.reader_token, "search_knowledge", query="flights", k=k)
    assert "a number from 1 to 20" in tool_error(result)


async def test_an_empty_query_or_question_is_refused(world, client):
    for tool, argument in (("search_knowledge", "query"), ("ask", "question")):
        result = await call_tool(client, world.reader_token, tool, **{argument: "   "})
        assert "is empty" in tool_error(result)


async def test_unknown_collection_names_are_refused_like_forbidden_ones(world, client):
    unknown = await call_tool(
        client, world.reader_token, "search_knowledge", query="x", collections=["Nope"]
    )
    forbidden = await call_tool(
        client, world.reader_token, "search_knowledge", query="x", collections=["HR"]
    )
    assert tool_error(unknown).replace("'Nope'", "'HR'") == tool_error(forbidden)


async def test_arguments_of_the_wrong_type_get_the_sdks_validation_error(world, client):
    result = await call_tool(client, world.reader_token, "get_source", source_id="../etc/passwd")
    assert result["isError"] is True


async def test_a_body_over_64_kib_is_refused(world, client):
    padding = "x" * (64 * 1024)
    response = await rpc(
        client, world.reader_token, "tools/call", {"name": "ask", "arguments": {"q": padding}}
    )
    assert response.status_code == 413


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[" * 5000])
async def test_malformed_json_gets_a_json_rpc_parse_error(world, client, body):
    response = await post(client, world.reader_token, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700


@pytest.mark.parametrize(
    "message", [{"hello": "world"}, {"jsonrpc": "1.0", "id": 1, "method": "tools/list"}, [], 42]
)
async def test_a_message_that_is_not_json_rpc_gets_the_sdks_error(world, client, message):
    response = await post(client, world.reader_token, json.dumps(message).encode())
    assert response.status_code == 400
    assert response.json()["error"]["code"] in (-32600, -32602, -32700)


async def test_an_unknown_method_or_tool_is_an_error_not_a_crash(world, client):
    method = await rpc(client, world.reader_token, "files/delete")
    assert method.json()["error"]["code"] == -32601
    tool = await call_tool(client, world.reader_token, "drop_tables")
    assert tool["isError"] is True


# --- ask: the one pipeline, another person's conversation, the rate limit --------------------


async def test_ask_answers_through_the_pipeline_and_keeps_the_conversation(
    world, client, llm_server
):
    llm_server.script(Reply(tokens=["Use the travel desk ", "[1]."]))
    with override_settings(**scripted_settings(llm_server)):
        result = await call_tool(
            client, world.reader_token, "ask", question="How do I book a flight?"
        )
    answer = result["structuredContent"]
    assert answer["answer"] == "Use the travel desk [1]."
    assert answer["citations"][0]["number"] == 1
    assert answer["citations"][0]["collection"] == "Handbook"
    assert "travel desk" in answer["citations"][0]["quote"]
    conversation = await Conversation.objects.aget(pk=answer["conversation_id"])
    assert conversation.owner_id == world.reader.pk and conversation.origin == "api"
    stored = await Message.objects.aget(pk=answer["message_id"])
    assert stored.status == "complete" and stored.content == answer["answer"]


@pytest.mark.parametrize("who", ["reader_token", "hr_narrowed_token"])
async def test_ask_reads_only_within_the_tokens_reach(world, client, llm_server, who):
    # A reply in case a handbook passage is close enough for the model to be asked at all.
    llm_server.script(Reply(tokens=["I cannot find that."]))
    with override_settings(**scripted_settings(llm_server)):
        result = await call_tool(client, getattr(world, who), "ask", question=SECRET_QUESTION)
    assert SECRET_WORDS not in json.dumps(result)
    assert all(SECRET_WORDS not in json.dumps(r.body) for r in llm_server.chat_requests)
    answer = await Message.objects.aget(pk=result["structuredContent"]["message_id"])
    assert {s["collection_id"] for s in answer.sources} <= {world.handbook.pk}


async def test_another_persons_conversation_is_an_error_and_nothing_leaks(
    world, client, llm_server
):
    theirs = await Conversation.objects.acreate(owner=world.hr_person, title="Salaries")
    await Message.objects.acreate(conversation=theirs, role="user", content=SECRET_QUESTION)
    for conversation_id in (str(theirs.pk), str(uuid.uuid4()), "not-a-uuid", "1 OR 1=1"):
        result = await call_tool(
            client, world.reader_token, "ask", question="And then?", conversation_id=conversation_id
        )
        assert tool_error(result) == "No such conversation."
    assert await Message.objects.filter(conversation=theirs).acount() == 1
    assert not await Conversation.objects.filter(owner=world.reader).aexists()
    assert llm_server.chat_requests == []


async def test_asking_in_a_conversation_still_answering_is_refused_as_busy(world, client):
    mine = await Conversation.objects.acreate(owner=world.reader, title="Flights", origin="api")
    await Message.objects.acreate(conversation=mine, role="user", content="Flights?")
    await Message.objects.acreate(conversation=mine, role="assistant", status="streaming")
    result = await call_tool(
        client, world.reader_token, "ask", question="And trains?", conversation_id=str(mine.pk)
    )
    assert "still being written" in tool_error(result)
    assert await Message.objects.filter(conversation=mine).acount() == 2


async def test_two_asks_at_once_on_one_conversation_one_answers_the_other_is_busy(
    world, client, llm_server
):
    mine = await Conversation.objects.acreate(owner=world.reader, title="Flights", origin="api")
    llm_server.script(Reply(tokens=["Book early ", "[1]."], delay=0.1))
    with override_settings(**scripted_settings(llm_server)):
        results = await asyncio.gather(
            *(
                call_tool(
                    client,
                    world.reader_token,
                    "ask",
                    question="How do I book a flight?",
                    conversation_id=str(mine.pk),
                )
                for _ in range(2)
            )
        )
    assert sorted(r["isError"] for r in results) == [False, True]
    busy = next(r for r in results if r["isError"])
    assert "still being written" in tool_error(busy)
    assert await Message.objects.filter(conversation=mine).acount() == 2
    # The mark goes with the answer: the next question in that conversation is answered.
    llm_server.script(Reply(tokens=["By train [1]."]))
    with override_settings(**scripted_settings(llm_server)):
        after = await call_tool(
            client, world.reader_token, "ask", question="And trains?", conversation_id=str(mine.pk)
        )
    assert after["isError"] is False


async def test_a_model_that_writes_nothing_gets_the_passages_quoted_with_their_citations(
    world, client, llm_server
):
    llm_server.script(Reply.error(500))
    with override_settings(**scripted_settings(llm_server)):
        result = await call_tool(
            client, world.reader_token, "ask", question="How do I book a flight?"
        )
    answer = result["structuredContent"]
    assert answer["answer"].startswith("The language model isn't available right now")
    assert answer["citations"] and answer["citations"][0]["collection"] == "Handbook"
    stored = await Message.objects.aget(pk=answer["message_id"])
    assert stored.status == "complete" and stored.model == "extractive"


async def test_a_model_broken_mid_answer_is_a_tool_error_and_the_question_is_kept(
    world, client, llm_server
):
    llm_server.script(Reply.dropped(["Book ", "through ", "the desk"], after=2))
    with override_settings(**scripted_settings(llm_server)):
        result = await call_tool(
            client, world.reader_token, "ask", question="How do I book a flight?"
        )
    said = tool_error(result)
    assert said.startswith("The answer was interrupted")  # the pipeline's, for people
    assert said.endswith("What was written before it stopped:\nBook through ")
    question = await Message.objects.aget(conversation__owner=world.reader, role="user")
    assert question.content == "How do I book a flight?"
    answer = await Message.objects.aget(conversation__owner=world.reader, role="assistant")
    assert answer.status == "failed" and answer.content == "Book through "


@override_settings(CHAT_RATE_LIMIT_PER_MINUTE=1)
async def test_the_chats_rate_limit_applies_with_when_to_retry(world, client, llm_server):
    llm_server.script(Reply(tokens=["Book early [1]."]))
    with override_settings(**scripted_settings(llm_server)):
        first = await call_tool(client, world.reader_token, "ask", question="Flights?")
        second = await call_tool(client, world.reader_token, "ask", question="Flights?")
        search = await call_tool(client, world.reader_token, "search_knowledge", query="flights")
    assert first["isError"] is False
    assert "Retry after 60 seconds" in tool_error(second)
    assert "Retry after 60 seconds" in tool_error(search)


async def test_every_call_is_logged_with_the_tokens_prefix_never_the_token(world, client, caplog):
    caplog.set_level("INFO", logger="assistant.mcp")
    await call_tool(client, world.reader_token, "list_collections")
    await call_tool(client, world.reader_token, "get_source", source_id=10**9)
    lines = [r for r in caplog.records if r.name == "assistant.mcp"]
    assert [(r.tool, r.outcome) for r in lines] == [
        ("list_collections", "ok"),
        ("get_source", "refused"),
    ]
    assert {r.token_prefix for r in lines} == {world.reader_token[:PREFIX_CHARS]}
    assert all(world.reader_token not in r.getMessage() for r in caplog.records)
