"""An oversized upload is refused by the ASGI app before any of it is read or stored."""

from django.test import override_settings

from assistant.project.bodylimit import BodySizeLimit


async def call(app, headers):
    sent, received = [], []

    async def receive():
        received.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(
        {
            "type": "http",
            "method": "POST",
            "path": "/knowledge/collections/1/upload",
            "headers": headers,
        },
        receive,
        send,
    )
    return sent, received


async def test_a_declared_oversized_body_gets_413_without_being_read():
    reached = []

    async def inner(scope, receive, send):
        reached.append(scope)

    with override_settings(KNOWLEDGE_MAX_UPLOAD_BYTES=1024):
        sent, received = await call(
            BodySizeLimit(inner), [(b"content-length", str(10 * 2**20).encode())]
        )
    assert sent[0]["status"] == 413 and not reached and not received


async def test_a_garbled_length_is_refused_and_a_normal_one_passes():
    reached = []

    async def inner(scope, receive, send):
        reached.append(scope)

    app = BodySizeLimit(inner)
    sent, _ = await call(app, [(b"content-length", b"12abc")])
    assert sent[0]["status"] == 413
    await call(app, [(b"content-length", b"100")])
    assert len(reached) == 1
