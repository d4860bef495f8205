"""Sessions for clients outside Django's test client (a WebSocket client, a browser, a raw socket)."""

from __future__ import annotations

from django.conf import settings
from django.test import Client


def session_cookie_for(user) -> str:
    """A real session for ``user`` (as after a login), as a ``Cookie`` header value."""
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
