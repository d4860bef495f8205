"""ASGI entry point: HTTP through Django (``/mcp`` through the MCP SDK), WebSockets through
Channels behind auth + Origin checks."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from assistant import mcp_server  # noqa: E402
from assistant.project.backpressure import SendBufferLimit  # noqa: E402
from assistant.project.bodylimit import BodySizeLimit  # noqa: E402
from assistant.project.routing import WebsocketOriginValidator, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BodySizeLimit(
            URLRouter(
                [
                    re_path(r"^mcp/?$", mcp_server.application),  # its own 64 KiB body limit
                    re_path(r"", django_asgi_app),
                ]
            )
        ),
        "websocket": SendBufferLimit(
            WebsocketOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
