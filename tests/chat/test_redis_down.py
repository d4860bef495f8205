"""The chat socket while Redis is unreachable (issue 15, fault 3), in-process: the rate limit's
cache or the channel layer pointed at a port nothing listens on. A question gets a clear
``unavailable`` error at once, never a hang and never a dead socket; a socket that cannot join
its events group is told why and closed with "try again later" (4503), so the tab comes back by
itself. The same against a real Redis restarted under real processes:
tests/e2e/test_redis_restart.py."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from assistant import services
from assistant.models import Message
from tests.support.processes import free_port
from tests.support.sessions import session_cookie_for
from tests.support.sockets import Socket, communicator, handshake, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I book a flight?"


def dead_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def dead_cache() -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": dead_redis(),
        }
    }


def dead_channel_layer() -> dict:
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [dead_redis()]},
        }
    }


async def test_a_question_asked_while_the_rate_limit_cache_is_down_gets_unavailable_at_once(
    make_user, settings
):
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 10
    user = await sync_to_async(make_user)()
    client = await open_socket(user)
    with override_settings(CACHES=dead_cache()):
        await client.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
        error = (await client.until_type("error"))[-1]
    assert error["code"] == "unavailable" and error["request_id"] == "r1"
    assert "try again in a moment" in error["message"]
    # Nothing was stored, and the socket is still there for the next try.
    assert not await Message.objects.filter(conversation__owner=user).aexists()
    await client.send(type="ping")
    assert (await client.until_type("pong"))[-1] == {"type": "pong"}
    await client.close()


async def test_a_regenerate_or_edit_while_the_cache_is_down_is_refused_and_changes_nothing(
    make_user, settings
):
    # No knowledge: the answer says so without asking a model, and is complete.
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 10
    user = await sync_to_async(make_user)()
    client = await open_socket(user)
    await client.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    done = (await client.until_type("done"))[-1]["message"]
    question = await Message.objects.aget(conversation_id=done["conversation_id"], role="user")
    before = await sync_to_async(list)(Message.objects.values_list("pk", "superseded", "content"))

    with override_settings(CACHES=dead_cache()):
        await client.send(type="regenerate", request_id="r2", message_id=done["id"])
        error = (await client.until_type("error"))[-1]
        assert (error["code"], error["request_id"]) == ("unavailable", "r2")
        await client.send(type="edit", request_id="r3", message_id=str(question.pk), text="Hi?")
        error = (await client.until_type("error"))[-1]
        assert (error["code"], error["request_id"]) == ("unavailable", "r3")
    after = await sync_to_async(list)(Message.objects.values_list("pk", "superseded", "content"))
    assert after == before
    await client.close()


async def test_a_stop_that_cannot_reach_redis_says_so_and_keeps_the_socket(make_user, settings):
    """An answer written by another process is stopped through a Redis flag: with Redis down
    the stop cannot travel, and the person is told (after hello: about this frame only)."""
    user = await sync_to_async(make_user)()
    question = await sync_to_async(services.question_create)(
        user=user, conversation=None, text=QUESTION
    )
    answer = await sync_to_async(services.answer_start)(question=question, sources=[])
    settings.REDIS_URL = dead_redis()  # read by this test's own Redis client (its event loop)
    client = await open_socket(user)
    await client.send(type="stop", message_id=str(answer.pk))
    error = (await client.until_type("error"))[-1]
    assert error["code"] == "unavailable" and "request_id" not in error
    await client.send(type="ping")
    assert (await client.until_type("pong"))[-1] == {"type": "pong"}
    await client.close()


async def test_a_socket_opened_while_the_channel_layer_is_down_is_told_and_closed_to_retry(
    make_user,
):
    user = await sync_to_async(make_user)()
    cookie = await sync_to_async(session_cookie_for)(user)
    with override_settings(CHANNEL_LAYERS=dead_channel_layer()):
        socket = Socket(communicator(cookie=cookie))
        accepted, _ = await handshake(socket.communicator)
        assert accepted
        frames = await socket.frames_until("hello")
    assert frames == [
        {
            "type": "error",
            "code": "unavailable",
            "message": frames[0]["message"],
        }
    ]
    assert socket.close_code == 4503
