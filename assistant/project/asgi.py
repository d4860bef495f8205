"""ASGI entry point: HTTP through Django, WebSockets through Channels behind auth + Origin checks."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from assistant.project.backpressure import SendBufferLimit  # noqa: E402
from assistant.project.bodylimit import BodySizeLimit  # noqa: E402
from assistant.project.routing import WebsocketOriginValidator, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BodySizeLimit(django_asgi_app),
        "websocket": SendBufferLimit(
            WebsocketOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
