"""The events WebSocket through a real Daphne process and a real WebSocket client."""

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async

from accounts.events import auser_event_send
from tests.support.sessions import session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws/events/"


async def connect(base, *, cookie=None, origin=None):
    headers = {"Cookie": cookie} if cookie else {}
    return await websockets.connect(
        ws_url(base), additional_headers=headers, origin=origin or base, open_timeout=5
    )


async def test_an_anonymous_connection_is_refused(daphne_server):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(daphne_server)
    assert refused.value.response.status_code == 403


async def test_a_foreign_origin_is_refused_even_with_a_valid_session(daphne_server, make_user):
    user = await sync_to_async(make_user)()
    cookie = await sync_to_async(session_cookie_for)(user)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(daphne_server, cookie=cookie, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    # The same session from the app's own origin is accepted: the Origin made the difference.
    ws = await connect(daphne_server, cookie=cookie)
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
    await ws.close()


async def test_a_user_receives_their_own_events_and_nobody_elses(daphne_server, make_user):
    alice, bob = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    ws_alice = await connect(daphne_server, cookie=await sync_to_async(session_cookie_for)(alice))
    ws_bob = await connect(daphne_server, cookie=await sync_to_async(session_cookie_for)(bob))
    hello = json.loads(await asyncio.wait_for(ws_alice.recv(), 5))
    assert hello == {"type": "hello", "user_id": alice.pk}
    await asyncio.wait_for(ws_bob.recv(), 5)  # bob's hello

    await auser_event_send(user_ids=alice.pk, event={"type": "source.progress", "progress": 40})

    event = json.loads(await asyncio.wait_for(ws_alice.recv(), 5))
    assert event == {"type": "source.progress", "progress": 40}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws_bob.recv(), 0.5)
    await ws_alice.close()
    await ws_bob.close()


async def test_unknown_messages_get_an_error_not_a_crash(daphne_server, make_user):
    user = await sync_to_async(make_user)()
    ws = await connect(daphne_server, cookie=await sync_to_async(session_cookie_for)(user))
    await ws.recv()
    await ws.send("not json at all")
    await ws.send(json.dumps({"type": "ping"}))
    await ws.send(json.dumps({"type": "no-such-thing"}))
    replies = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
    assert [(r["type"], r.get("code")) for r in replies] == [
        ("error", "invalid_json"),
        ("pong", None),
        ("error", "unknown_message"),
    ]
    await ws.close()
