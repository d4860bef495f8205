"""Sessions: an open socket keeps no rights its session has lost.

Each frame on the chat socket must be judged as Django would judge an HTTP request carrying the
same session cookie: an expired session, a changed password (or any change of the user's
session auth hash), a flushed session or a session naming another user closes the socket with
4401. In-process through Channels' WebsocketCommunicator, the real ASGI application (Origin
check and auth middleware included), the real database session store and, for questions, a
scripted model.
"""

from __future__ import annotations

import json
from datetime import timedelta
from importlib import import_module

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import override_settings
from django.utils import timezone

from assistant.consumers import CLOSE_UNAUTHENTICATED
from assistant.project.asgi import application
from tests.support.events import Closed
from tests.support.knowledge import SECRET_QUESTION, SECRET_WORDS, hr_world
from tests.support.sessions import session_cookie_for
from tests.support.sockets import open_socket

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "http://127.0.0.1:8000"


@pytest.fixture(autouse=True)
def _our_origin(settings):
    settings.WEBSOCKET_ALLOWED_ORIGINS = [ORIGIN]


def _session_key(cookie: str) -> str:
    return cookie.split("=", 1)[1]


async def _open_socket(user) -> tuple[WebsocketCommunicator, str]:
    cookie = await sync_to_async(session_cookie_for)(user)
    communicator = WebsocketCommunicator(
        application,
        "/ws/events/",
        headers=[
            (b"origin", ORIGIN.encode()),
            (b"host", b"127.0.0.1:8000"),
            (b"cookie", cookie.encode()),
        ],
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
    return communicator, _session_key(cookie)


async def _assert_closed_as_signed_out(communicator: WebsocketCommunicator) -> None:
    await communicator.send_json_to({"type": "ping"})
    frame = await communicator.receive_output(timeout=5)
    assert frame == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}, frame
    # As the server does once the app has closed the socket: the disconnect ends the consumer
    # (a bare wait() would sit out its whole time-out, the consumer waiting for this).
    await communicator.disconnect(code=CLOSE_UNAUTHENTICATED, timeout=5)
    assert communicator.future.done()


async def test_a_socket_keeps_working_while_its_session_is_valid(make_user):
    user = await sync_to_async(make_user)()
    communicator, _ = await _open_socket(user)
    for _ in range(3):
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    await communicator.disconnect()


async def test_a_socket_whose_session_expired_is_closed_at_its_next_frame(make_user):
    user = await sync_to_async(make_user)()
    communicator, key = await _open_socket(user)

    # The row is still in the table (nobody ran clearsessions), but its expiry date has passed:
    # an HTTP request with this cookie would be anonymous.
    await Session.objects.filter(session_key=key).aupdate(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    assert await Session.objects.filter(session_key=key).aexists()

    await _assert_closed_as_signed_out(communicator)


async def test_a_socket_is_closed_after_the_password_was_changed_elsewhere(make_user):
    user = await sync_to_async(make_user)()
    communicator, key = await _open_socket(user)

    # The password is changed from another browser (or reset by an administrator): Django logs
    # every other session out, because their stored auth hash no longer matches.
    user.set_password("a brand new passphrase 42")
    await user.asave(update_fields=["password"])

    await _assert_closed_as_signed_out(communicator)
    assert await Session.objects.filter(session_key=key).aexists(), "a read must not flush"


async def test_a_socket_is_closed_after_its_session_was_flushed(make_user):
    user = await sync_to_async(make_user)()
    communicator, key = await _open_socket(user)

    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    await sync_to_async(store.delete)(key)

    await _assert_closed_as_signed_out(communicator)


async def test_a_socket_is_closed_when_its_session_now_signs_in_someone_else(make_user):
    alice, mallory = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    communicator, key = await _open_socket(alice)

    # The session row is rewritten to name another user (a session fixation, or an operator
    # re-using a key): the socket opened as Alice must not go on as anyone.
    def rewrite():
        from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY

        store = import_module(settings.SESSION_ENGINE).SessionStore(key)
        store[SESSION_KEY] = str(mallory.pk)
        store[HASH_SESSION_KEY] = mallory.get_session_auth_hash()
        store.save()

    await sync_to_async(rewrite)()

    await _assert_closed_as_signed_out(communicator)


async def test_a_socket_survives_a_secret_key_rotation_that_keeps_the_old_key_as_a_fallback(
    make_user,
):
    # Rotating SECRET_KEY with the old one in SECRET_KEY_FALLBACKS keeps people signed in over
    # HTTP; their sockets must not be closed either.
    user = await sync_to_async(make_user)()
    old_key = settings.SECRET_KEY
    communicator, _ = await _open_socket(user)
    with override_settings(SECRET_KEY="n" * 60, SECRET_KEY_FALLBACKS=[old_key]):
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    await communicator.disconnect()


# --- Asking over the open socket, answered with a scripted model ---------------------------


async def test_a_deactivated_user_cannot_keep_reading_restricted_knowledge_over_an_open_socket(
    chat_model, make_user
):
    _, hr, _, _ = await sync_to_async(hr_world)(make_user)
    carol = await sync_to_async(make_user)(email="carol@example.com")
    await sync_to_async(carol.groups.add)(hr)
    tab = await open_socket(carol)

    # Carol leaves the company: her account is deactivated (HTTP requests are refused at once).
    carol.is_active = False
    await carol.asave(update_fields=["is_active"])

    await tab.send(type="ask", request_id="r1", text=SECRET_QUESTION)
    frames = await tab.frames_until("done", "error")
    await tab.close()
    assert SECRET_WORDS not in json.dumps(frames), "a deactivated account still got HR passages"


async def test_signing_out_closes_the_sockets_of_that_session_at_their_next_frame(
    chat_model, make_user
):
    _, hr, _, _ = await sync_to_async(hr_world)(make_user)
    dave = await sync_to_async(make_user)(email="dave@example.com")
    await sync_to_async(dave.groups.add)(hr)
    tab = await open_socket(dave)
    await sync_to_async(Session.objects.all().delete)()  # what logging out does to the session

    await tab.send(type="ask", request_id="r1", text=SECRET_QUESTION)
    frames = await tab.frames_until("done", "error", timeout=5)
    assert SECRET_WORDS not in json.dumps(frames)
    with pytest.raises(Closed) as closed:
        await tab.recv(5)
    assert closed.value.code == 4401
    await tab.close()
