"""Cross-site WebSocket hijacking: only pages on our own exact origins may open the chat socket.

A browser sends the victim's session cookie with a WebSocket handshake from any page, so the
Origin header is the only thing telling our page from an attacker's. In-process through the
real ASGI application (origin check, auth middleware, consumer) with a signed-in user.
"""

from __future__ import annotations

import importlib

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings

import assistant.project.asgi
from tests.support.sessions import session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCTION = {
    "DEBUG": False,
    "ALLOWED_HOSTS": [".example.com"],
    "WEBSOCKET_ALLOWED_ORIGINS": ["https://assistant.example.com"],
}


async def _handshake(
    user, *, origin: str | None, host: str = "assistant.example.com", scheme="wss"
):
    """Whether the socket was accepted (and said hello)."""
    cookie = await sync_to_async(session_cookie_for)(user)
    headers = [(b"host", host.encode()), (b"cookie", cookie.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    # Built afresh under the test's settings, as a process started with them would build it.
    application = importlib.reload(assistant.project.asgi).application
    communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    communicator.scope["scheme"] = scheme
    connected, _ = await communicator.connect(timeout=5)
    if connected:
        assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
        await communicator.disconnect()
    return connected


@override_settings(**PRODUCTION)
async def test_a_page_on_another_subdomain_cannot_open_a_socket_despite_a_wildcard_allowed_host(
    make_user,
):
    user = await sync_to_async(make_user)()
    assert not await _handshake(user, origin="https://evil.example.com")


@override_settings(**PRODUCTION)
async def test_a_plain_http_page_cannot_open_a_socket_to_an_https_deployment(make_user):
    user = await sync_to_async(make_user)()
    assert not await _handshake(user, origin="http://assistant.example.com")


@override_settings(**PRODUCTION)
async def test_a_socket_without_an_origin_header_is_refused(make_user):
    user = await sync_to_async(make_user)()
    assert not await _handshake(user, origin=None)


@override_settings(**PRODUCTION)
@pytest.mark.parametrize(
    "origin",
    [
        "null",  # sandboxed iframes and file:// pages
        "https://assistant.example.com.evil.net",
        "https://assistant.example.com:8443",
        "https://user@assistant.example.com",
        "javascript:alert(1)",
        "https://[not-an-ip",
        "x" * 5000,
    ],
)
async def test_malformed_or_look_alike_origins_are_refused(make_user, origin):
    user = await sync_to_async(make_user)()
    assert not await _handshake(user, origin=origin)


@override_settings(**PRODUCTION)
async def test_the_trusted_origin_opens_a_socket(make_user):
    user = await sync_to_async(make_user)()
    assert await _handshake(user, origin="https://assistant.example.com")
    assert await _handshake(user, origin="https://Assistant.Example.com:443")  # same origin


@override_settings(
    DEBUG=False, ALLOWED_HOSTS=["assistant.example.com"], WEBSOCKET_ALLOWED_ORIGINS=[]
)
async def test_in_production_the_local_hosts_and_the_own_host_are_not_admitted_unless_listed(
    make_user,
):
    user = await sync_to_async(make_user)()
    assert not await _handshake(
        user, origin="http://127.0.0.1:8000", host="127.0.0.1:8000", scheme="ws"
    )
    assert not await _handshake(user, origin="https://assistant.example.com")


@override_settings(
    DEBUG=True,
    ALLOWED_HOSTS=["127.0.0.1", "localhost", "box.test", ".dev.example.com"],
    WEBSOCKET_ALLOWED_ORIGINS=[],
)
async def test_in_debug_the_local_hosts_on_any_port_and_the_own_exact_host_are_accepted(make_user):
    user = await sync_to_async(make_user)()
    for origin in ("http://127.0.0.1:8000", "http://localhost:41234", "http://127.0.0.1"):
        assert await _handshake(user, origin=origin, host="127.0.0.1:8000", scheme="ws"), origin
    # A development box reached by its name: the page's own origin, exactly.
    assert await _handshake(user, origin="http://box.test:8000", host="box.test:8000", scheme="ws")
    assert not await _handshake(
        user, origin="https://box.test:8000", host="box.test:8000", scheme="ws"
    )
    # Still no wildcard: a page on another subdomain of a wildcard host is refused in DEBUG too.
    assert not await _handshake(
        user, origin="http://evil.dev.example.com", host="app.dev.example.com", scheme="ws"
    )
    # A remote page is not "local" just because the socket was addressed to 127.0.0.1.
    assert not await _handshake(
        user, origin="http://evil.example", host="127.0.0.1:8000", scheme="ws"
    )
