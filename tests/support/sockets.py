"""A browser tab's chat socket, for tests.

:func:`open_socket` runs the project's real ASGI application in this process through Channels'
``WebsocketCommunicator``: the Origin check, session authentication from a real session cookie,
the consumer, the real Redis channel layer and PostgreSQL. It is what socket tests use.

:func:`open_tab` connects a real WebSocket client to a real Daphne process; it is for the
end-to-end tests under tests/e2e/ (several processes, the server's own handshake).

Both read frames as :class:`tests.support.events.Frames` (``until``, ``drained``...).
"""

from __future__ import annotations

import asyncio
import json

import websockets
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from tests.support.events import Closed, Frames
from tests.support.sessions import session_cookie_for

# The page the sockets are opened from, and the host they are addressed to.
ORIGIN = "http://127.0.0.1:8000"
HOST = "127.0.0.1:8000"


class Socket(Frames):
    """One tab's socket to the app running in this process."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        super().__init__()
        self.communicator = communicator
        self.close_code: int | None = None
        self.disconnected = False

    async def _next(self, timeout: float) -> dict:
        if self.close_code is not None:
            raise Closed(self.close_code)
        # A time-out here also stops the consumer (asgiref cancels the application); wait on
        # something that will come, and prove absence with drained().
        message = await self.communicator.receive_output(timeout)
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            raise Closed(self.close_code)
        return json.loads(message["text"])

    async def send(self, **frame) -> None:
        await self.communicator.send_json_to(frame)

    async def send_text(self, text: str) -> None:
        """A raw text frame (not necessarily JSON)."""
        await self.communicator.send_to(text_data=text)

    async def close(self) -> None:
        """Closes the tab; after the server closed it, delivers the disconnect a server would."""
        if not self.disconnected:
            self.disconnected = True
            self.close_code = self.close_code or 1000
            await self.communicator.disconnect(code=self.close_code, timeout=5)


def communicator(
    *, cookie: str | None, origin: str | None = ORIGIN, host: str = HOST
) -> WebsocketCommunicator:
    """A not yet connected socket to the app, as a page on ``origin`` would open it."""
    from assistant.project.asgi import application

    headers = [(b"host", host.encode())]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(application, "/ws/events/", headers=headers)


async def handshake(
    communicator: WebsocketCommunicator, *, allowed_origins: tuple[str, ...] = (ORIGIN,)
) -> tuple[bool, int | str | None]:
    """Connects: (accepted, close code or subprotocol). The deployment lists ``ORIGIN`` as its
    page's origin (``WEBSOCKET_ALLOWED_ORIGINS``), as production lists its own; the check
    itself runs as in production (tests/security/test_origins.py covers its rules)."""
    with override_settings(WEBSOCKET_ALLOWED_ORIGINS=list(allowed_origins)):
        return await communicator.connect(timeout=5)


async def open_socket(user, *, cookie: str | None = None) -> Socket:
    """A signed-in tab of ``user`` (a fresh session unless ``cookie`` is given), hello read."""
    cookie = cookie or await sync_to_async(session_cookie_for)(user)
    socket = Socket(communicator(cookie=cookie))
    accepted, code = await handshake(socket.communicator)
    assert accepted, f"the socket was refused ({code})"
    hello = await socket.recv(5)
    assert hello == {"type": "hello", "user_id": user.pk}, hello
    socket.user_id = user.pk
    return socket


class Tab(Frames):
    """One tab's real WebSocket to a real Daphne."""

    def __init__(self, ws) -> None:
        super().__init__()
        self.ws = ws

    async def _next(self, timeout: float) -> dict:
        try:
            return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        except websockets.ConnectionClosed as closed:
            raise Closed(closed.rcvd.code if closed.rcvd else None) from None

    async def send(self, **frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def close(self) -> None:
        await self.ws.close()


async def open_tab(base: str, user) -> Tab:
    cookie = await sync_to_async(session_cookie_for)(user)
    ws = await websockets.connect(
        base.replace("http://", "ws://") + "/ws/events/",
        additional_headers={"Cookie": cookie},
        origin=base,
        open_timeout=5,
        max_size=2**22,
    )
    tab = Tab(ws)
    hello = await tab.recv(5)
    assert hello["type"] == "hello", hello
    tab.user_id = hello["user_id"]
    return tab
