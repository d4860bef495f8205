"""The events WebSocket through the project's ASGI application in this process (Origin check,
session auth, the consumer) and the real Redis channel layer. The same refusals through a real
Daphne's handshake: tests/e2e/test_sockets_across_processes.py."""

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from accounts.events import auser_event_send, user_event_send
from assistant.consumers import CLOSE_UNAUTHENTICATED
from tests.support.events import capture_user_events
from tests.support.sessions import session_cookie_for
from tests.support.sockets import Socket, communicator, handshake, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_an_anonymous_connection_is_refused():
    accepted, code = await handshake(communicator(cookie=None))
    assert (accepted, code) == (False, CLOSE_UNAUTHENTICATED)


async def test_a_foreign_origin_is_refused_even_with_a_valid_session(make_user):
    user = await sync_to_async(make_user)()
    cookie = await sync_to_async(session_cookie_for)(user)
    accepted, _ = await handshake(communicator(cookie=cookie, origin="http://evil.example"))
    assert not accepted
    # The same session from the app's own origin is accepted: the Origin made the difference.
    socket = Socket(communicator(cookie=cookie))
    assert (await handshake(socket.communicator))[0]
    assert (await socket.recv(5))["type"] == "hello"
    await socket.close()


async def test_a_user_receives_their_own_events_and_nobody_elses(make_user):
    alice, bob = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    # Each socket said hello with its own user id (open_socket checks it).
    ws_alice, ws_bob = await open_socket(alice), await open_socket(bob)

    await auser_event_send(user_ids=alice.pk, event={"type": "source.progress", "progress": 40})

    assert await ws_alice.recv(5) == {"type": "source.progress", "progress": 40}
    # A sentinel sent to Bob after Alice's event reaches him first: nothing else was sent to him.
    assert await ws_bob.drained() == []
    await ws_alice.close()
    await ws_bob.close()


async def test_an_event_of_a_rolled_back_transaction_is_never_sent(make_user):
    alice = await sync_to_async(make_user)()

    def change_twice():
        with transaction.atomic():
            user_event_send(user_ids=alice.pk, event={"type": "kept"})
        with pytest.raises(RuntimeError), transaction.atomic():
            user_event_send(user_ids=[alice.pk], event={"type": "ghost"})
            raise RuntimeError("roll back")

    async with capture_user_events(alice.pk) as events:
        await sync_to_async(change_twice)()
        assert await events.drained() == [{"type": "kept"}]


async def test_unknown_messages_get_an_error_not_a_crash(make_user):
    user = await sync_to_async(make_user)()
    socket = await open_socket(user)
    await socket.send_text("not json at all")
    await socket.send(type="ping")
    await socket.send(type="no-such-thing")
    replies = [await socket.recv(5) for _ in range(3)]
    assert [(r["type"], r.get("code")) for r in replies] == [
        ("error", "invalid_json"),
        ("pong", None),
        ("error", "unknown_message"),
    ]
    await socket.close()
