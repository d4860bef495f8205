"""Refuses oversized request bodies before Django reads them (Django's ASGI handler would
first spool the whole body to a temporary file).

Daphne itself receives a whole request before handing it to the app, so the bytes still cross
the network: in production, cap the body size at the reverse proxy too (nginx
``client_max_body_size``), which is the only place that can refuse before reading.
"""

from __future__ import annotations

import json

from django.conf import settings


class BodySizeLimit:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            limit = (
                settings.KNOWLEDGE_MAX_UPLOAD_BYTES + 1024 * 1024
            )  # an upload plus its form overhead
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                await _refuse(send, limit)
                return
        await self.app(scope, receive, send)


async def _refuse(send, limit: int) -> None:
    body = json.dumps(
        {"ok": False, "error": f"The request is larger than the limit of {limit // 2**20} MB."}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
