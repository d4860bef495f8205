"""WebSocket wiring: the routes, and which pages may open a socket to them."""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.urls import path

from assistant.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi()),
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

Origin = tuple[str, str, int]  # (scheme, host, port), compared exactly


def _parse_origin(value: str) -> Origin | None:
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return parts.scheme, parts.hostname, port or _DEFAULT_PORTS[parts.scheme]


def _own_origin(scope) -> Origin | None:
    """The origin the socket was addressed to (scheme + Host header), when that Host is one of
    ALLOWED_HOSTS exactly: a wildcard entry never makes another subdomain our own."""
    host = _header(scope, b"host")
    if not host:
        return None
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    own = _parse_origin(f"{scheme}://{host}")
    allowed = {h.lower() for h in settings.ALLOWED_HOSTS}
    return own if own and own[1] in allowed else None


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def origin_allowed(scope) -> bool:
    """Whether the page that opened this socket may use it.

    Only the exact origins in ``WEBSOCKET_ALLOWED_ORIGINS`` (scheme, host and port) are
    admitted, never ALLOWED_HOSTS patterns: ``.example.com`` there must not let a page on
    ``evil.example.com`` ride a signed-in user's cookie, and an ``http://`` page must not
    reach an ``https://`` deployment. In DEBUG, plain local hosts on any port and the
    socket's own origin are admitted too. A missing Origin is refused: browsers always send
    one, so only a non-browser client omits it.
    """
    origin = _parse_origin(_header(scope, b"origin") or "")
    if origin is None:
        return False
    allowed = {_parse_origin(o) for o in settings.WEBSOCKET_ALLOWED_ORIGINS}
    if origin in allowed:
        return True
    if settings.DEBUG:
        if origin[0] == "http" and origin[1] in _LOCAL_HOSTS:
            return True
        return origin == _own_origin(scope)
    return False


class WebsocketOriginValidator:
    """ASGI middleware refusing (HTTP 403 on the handshake) sockets from other origins."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
