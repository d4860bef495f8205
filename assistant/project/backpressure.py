"""A bound on what one WebSocket may leave waiting in the server's send buffer.

Daphne hands every frame to Twisted, whose transport keeps in memory whatever the kernel will
not take yet, without limit. A client that completes the handshake and then never reads (a
stalled tab on a dead network, or someone doing it on purpose, with many sockets) makes the
server keep every frame it is sent: a long answer, every progress event of a big upload.
Daphne's ping (every 20 s, 30 s to answer) eventually drops such a socket, but lets it hold all
it was sent in the meantime, and a faster stream means more memory.

The mechanism is Twisted's own flow control: a transport tells its registered push producer
to ``pauseProducing()`` when its user-space buffer passes ``bufferSize`` (64 KiB), and to
``resumeProducing()`` once the buffer is empty again. Each socket gets a ``_SendWatch`` as
that producer; while the transport is paused it counts the bytes still written to it, and
once they pass ``WEBSOCKET_SEND_BUFFER_BYTES`` the connection is aborted: the buffer is freed
at once, the consumer gets its disconnect, and that frame and later ones are dropped. A
browser that reads normally never gets near the bound (it is paused only while its kernel
buffer and 64 KiB are full); if a slow network ever cuts it, the chat reconnects and catches
up on the answer, as after any dropped connection.

Neither Daphne nor autobahn offers a bound on the send buffer, and the ASGI ``send`` gives the
application no back-pressure, so this wraps the one seam there is: Daphne's ``send`` is a
``functools.partial`` of its server's ``handle_reply`` bound to the socket's protocol, whose
``transport`` is a plain TCP transport (TLS ends at the proxy in the documented layout). On any
other server or transport the socket is passed through unbounded, and that is logged once.
The upgraded HTTP channel is still registered as the transport's producer (it stops reading
from the client while the buffer is full); the watch keeps it and passes its pause and resume
on, so that behaviour stays.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from zope.interface import implementer

try:  # Twisted comes with Daphne; another ASGI server may run without it
    from twisted.internet.interfaces import IPushProducer
except ImportError:  # pragma: no cover
    IPushProducer = None

logger = logging.getLogger("assistant.backpressure")

FRAME_OVERHEAD = 14  # the largest WebSocket frame header a server writes


def _implements_push_producer(cls):
    return implementer(IPushProducer)(cls) if IPushProducer is not None else cls


@_implements_push_producer
class _SendWatch:
    """The transport's push producer for one socket: counts what is written while the transport
    says its buffer is full, and aborts the connection past ``limit`` bytes."""

    def __init__(self, transport, limit: int) -> None:
        self.transport = transport
        self.limit = limit
        self.paused = False
        self.written_while_paused = 0
        self.cut = False
        # Keep the producer already there (the upgraded HTTP channel) and pass its signals on.
        self.previous = transport.producer
        if self.previous is not None:
            transport.unregisterProducer()
        transport.registerProducer(self, True)

    # IPushProducer, called by the transport
    def pauseProducing(self) -> None:
        # Called again at every write while the buffer stays full: only the first one starts
        # the count.
        if self.paused:
            return
        self.paused = True
        self.written_while_paused = 0
        if self.previous is not None:
            self.previous.pauseProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        self.written_while_paused = 0
        if self.previous is not None:
            self.previous.resumeProducing()

    def stopProducing(self) -> None:
        self.paused = False
        if self.previous is not None:
            self.previous.stopProducing()

    def admits(self, size: int) -> bool:
        """Whether a frame of ``size`` bytes may be sent; past the bound, aborts the socket."""
        if self.cut:
            return False
        if not self.paused:
            return True
        self.written_while_paused += size
        if self.written_while_paused <= self.limit:
            return True
        self.cut = True
        logger.warning(
            "websocket closed: the client stopped reading",
            extra={"buffered_over_bytes": self.limit},
        )
        self.transport.abortConnection()
        return False


def _frame_size(message: dict) -> int:
    if message.get("bytes"):
        return len(message["bytes"]) + FRAME_OVERHEAD
    return len((message.get("text") or "").encode()) + FRAME_OVERHEAD


_warned = False


def _watch_for(send, limit: int) -> _SendWatch | None:
    global _warned
    protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
    transport = getattr(protocol, "transport", None)
    if IPushProducer is not None and hasattr(transport, "producer"):
        return _SendWatch(transport, limit)
    if not _warned:
        _warned = True
        logger.warning("websocket send buffer unbounded: not a Daphne TCP transport")
    return None


class SendBufferLimit:
    """ASGI middleware for the ``websocket`` scope: bounds each socket's unsent bytes (see the
    module docstring). ``WEBSOCKET_SEND_BUFFER_BYTES = 0`` turns it off."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        limit = settings.WEBSOCKET_SEND_BUFFER_BYTES
        watch = _watch_for(send, limit) if limit else None
        if watch is None:
            return await self.app(scope, receive, send)

        async def bounded_send(message: dict) -> None:
            if message["type"] == "websocket.send" and not watch.admits(_frame_size(message)):
                return  # dropped: the socket is being closed
            await send(message)

        return await self.app(scope, receive, bounded_send)
