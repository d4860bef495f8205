"""The WebSocket door. Thin: authenticate, validate each frame, check ownership, call a service.

One socket per browser tab carries the user's own events and their chat (see
docs/websocket-protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid

import redis.exceptions
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import InterfaceError, OperationalError

from accounts.events import user_group
from accounts.selectors import user_for_session
from assistant import selectors, services
from assistant.answering import generation
from assistant.project.threads import db

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
# "Try again later" (HTTP's 503 in the 4000s, as 4401 is its 401: servers may not send
# WebSocket's own 1013): a service the socket needs is down; the tab reconnects by itself.
CLOSE_TRY_AGAIN = 4503

# Redis (the rate limit's cache, the channel layer, stop flags) unreachable: restarting, failing
# over. redis-py's ConnectionError also covers a Redis still loading its data after a restart.
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
UNAVAILABLE = (
    "The assistant is briefly unavailable while a service it needs restarts. "
    "Nothing was sent; try again in a moment."
)
# PostgreSQL unreachable (a restart, a failover): its connections refused or dropped.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)  # refused or dropped connections
DATABASE_AWAY = (
    "The assistant can't reach its database right now, so this was not saved. "
    "Please try again in a minute."
)


MAX_MESSAGE_BYTES = 64 * 1024


class Invalid(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _uuid(value, field: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise Invalid("not_found", f"No such {field}.") from None


def _text(content: dict) -> str:
    text = content.get("text")
    if not isinstance(text, str) or not text.strip():
        raise Invalid("invalid", "Type a question first.")
    limit = settings.CHAT_MAX_QUESTION_CHARS
    if len(text) > limit:
        raise Invalid(
            "too_long",
            f"Questions can be at most {limit:,} characters; this one has {len(text):,}.",
        )
    return text.strip()


def _collection_ids(content: dict) -> list[int] | None:
    ids = content.get("collection_ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or len(ids) > 100 or not all(isinstance(i, int) for i in ids):
        raise Invalid("invalid", "collection_ids must be a list of numbers.")
    return ids


class EventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None)
        self.open = True
        # Redis down here raises to __call__, which tells the tab and closes (see there).
        await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
        self.group = user_group(user.pk)
        await self.accept()
        self.accepted = True
        await self.send_json({"type": "hello", "user_id": user.pk})

    async def disconnect(self, code):
        self.open = False  # answers being written carry on; they just stop sending here
        following = getattr(self, "following", None)
        if following is not None:
            following.cancel()
        if getattr(self, "group", None):
            # With Redis gone the membership expires by itself; the socket closes either way.
            with contextlib.suppress(*REDIS_DOWN):
                await self.channel_layer.group_discard(self.group, self.channel_name)

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except REDIS_DOWN:
            # The channel layer cannot reach Redis (a restart). Without its group a tab would
            # miss every event, and the group may be gone with Redis's data: close, and the tab
            # reconnects, joins again and reloads what it shows. Answers being written carry on
            # (they need neither the socket nor Redis). A tab not yet accepted is told why
            # first, so a question it was holding gets a clear refusal rather than a wait.
            logger.warning("channel layer unreachable; closing the socket", exc_info=True)
            self.open = False
            with contextlib.suppress(Exception):  # the connection may be gone already
                if not getattr(self, "accepted", False):
                    await send({"type": "websocket.accept"})
                    error = {"type": "error", "code": "unavailable", "message": UNAVAILABLE}
                    await send({"type": "websocket.send", "text": json.dumps(error)})
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN})

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        # Bad frames get an error reply; they must never take the socket down.
        if text_data is None or len(text_data) > MAX_MESSAGE_BYTES:
            await self.send_json(
                {
                    "type": "error",
                    "code": "invalid_message",
                    "message": "Message too large or not text.",
                }
            )
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.send_json({"type": "error", "code": "invalid_json", "message": "Not JSON."})
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type") if isinstance(content, dict) else None
        handler = self.HANDLERS.get(kind)
        if handler is None:
            await self.send_json(
                {"type": "error", "code": "unknown_message", "message": "Unknown message type."}
            )
            return
        # Every frame acts as the user is now, not as they were when the socket opened: a
        # revoked staff flag or group applies at once, and a socket whose session would no
        # longer sign an HTTP request in (deactivated, signed out, expired, password changed)
        # is closed.
        try:
            user = await db(user_for_session)(user_id=self.user.pk, session_key=self.session_key)
        except DATABASE_UNAVAILABLE:  # a restart or failover: say so, keep the socket to retry
            # Logged: a deadlock or a statement timeout is an OperationalError too.
            logger.warning("database unavailable for a socket frame", exc_info=True)
            if kind == "ping":  # the connection itself is fine: the session is checked later
                await self.send_json({"type": "pong"})
            else:
                await self._error("unavailable", DATABASE_AWAY, content)
            return
        if user is None:
            self.open = False
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        try:
            await handler(self, content)
        except Invalid as exc:
            await self._error(exc.code, str(exc), content)
        except ObjectDoesNotExist:
            await self._error("not_found", "Not found.", content)
        except services.RateLimited as exc:
            await self._error("rate_limited", str(exc), content)
        except services.Busy as exc:
            await self._error("busy", str(exc), content)
        except services.ChatError as exc:
            await self._error("invalid", str(exc), content)
        except REDIS_DOWN:
            # Before anything was stored (the rate limit is checked first): refuse, never hang.
            logger.warning("Redis unreachable while handling a frame", exc_info=True)
            await self._error("unavailable", UNAVAILABLE, content)
        except DATABASE_UNAVAILABLE:
            logger.warning("database unavailable for a socket frame", exc_info=True)
            await self._error("unavailable", DATABASE_AWAY, content)

    async def _error(self, code, message, content):
        frame = {"type": "error", "code": code, "message": message}
        if isinstance(content.get("request_id"), str):
            frame["request_id"] = content["request_id"][:100]
        await self.send_json(frame)

    async def safe_send(self, frame: dict) -> None:
        if self.open:
            try:
                await self.send_json(frame)
            except Exception:  # the socket went away mid-send: the answer carries on
                self.open = False

    # --- handlers ---------------------------------------------------------------------

    async def on_ping(self, content):
        await self.send_json({"type": "pong"})

    async def on_ask(self, content):
        text = _text(content)
        collection_ids = _collection_ids(content)
        conversation_id = content.get("conversation_id")
        question, claimed = await db(self._store_question)(text, conversation_id)
        await self._answer(question, content, collection_ids, claimed=claimed)

    def _store_question(self, text, conversation_id):
        conversation = None
        if conversation_id is not None:
            conversation = selectors.conversation_get_for_user(
                user=self.user, conversation_id=_uuid(conversation_id, "conversation")
            )
        return services.conversation_claimed(
            conversation,
            lambda: services.question_ask(user=self.user, conversation=conversation, text=text),
        )

    async def _answer(self, question, content, collection_ids=None, use_cache=True, claimed=None):
        try:
            await self._start(question, content, collection_ids, use_cache)
        finally:
            # The answer row exists (or the answer ended before one): the conversation is busy
            # by that row now, so the claim taken with the question goes.
            if claimed is not None:
                await db(services.conversation_release)(conversation_id=claimed)

    async def _start(self, question, content, collection_ids, use_cache):
        await self.send_json(
            {
                "type": "ack",
                "request_id": str(content.get("request_id", ""))[:100],
                "conversation_id": str(question.conversation_id),
                "question_id": str(question.pk),
            }
        )
        await generation.start_answer(
            user=self.user,
            question=question,
            send=self.safe_send,
            collection_ids=collection_ids,
            request_id=str(content.get("request_id", ""))[:100],
            use_cache=use_cache,
        )

    async def on_stop(self, content):
        message_id = _uuid(content.get("message_id"), "message")
        await db(selectors.message_get_for_user)(user=self.user, message_id=message_id)
        await generation.request_stop(message_id)

    async def on_regenerate(self, content):
        message_id = _uuid(content.get("message_id"), "message")
        question, claimed = await db(self._regenerate)(message_id)
        # Regenerating means "ask the model again": never the cached answer.
        await self._answer(question, content, use_cache=False, claimed=claimed)

    def _regenerate(self, message_id):
        message = selectors.message_get_for_user(user=self.user, message_id=message_id)
        return services.conversation_claimed(
            message.conversation,
            lambda: services.answer_regenerate(user=self.user, message=message),
        )

    async def on_edit(self, content):
        message_id = _uuid(content.get("message_id"), "message")
        text = _text(content)
        question, claimed = await db(self._edit)(message_id, text)
        await self._answer(question, content, claimed=claimed)

    def _edit(self, message_id, text):
        message = selectors.message_get_for_user(user=self.user, message_id=message_id)
        return services.conversation_claimed(
            message.conversation,
            lambda: services.question_edit_ask(user=self.user, message=message, text=text),
        )

    async def on_feedback(self, content):
        message_id = _uuid(content.get("message_id"), "message")
        rating = content.get("rating")
        comment = content.get("comment") or ""
        if rating not in (1, -1) or not isinstance(comment, str):
            raise Invalid("invalid", "Feedback needs a rating of 1 or -1.")
        await db(self._feedback)(message_id, rating, comment)
        await self.send_json({"type": "feedback.saved", "message_id": message_id, "rating": rating})

    def _feedback(self, message_id, rating, comment):
        message = selectors.message_get_for_user(user=self.user, message_id=message_id)
        services.feedback_give(user=self.user, message=message, rating=rating, comment=comment)

    async def on_attach(self, content):
        message_id = _uuid(content.get("message_id"), "message")
        message = await db(selectors.answer_get_for_user)(user=self.user, message_id=message_id)
        # One followed answer per tab: a second attach replaces the first.
        following = getattr(self, "following", None)
        if following is not None:
            following.cancel()
        self.following = asyncio.create_task(
            generation.follow_answer(message=message, send=self.safe_send)
        )

    async def on_switch_version(self, content):
        message_id = _uuid(content.get("message_id"), "message")
        message = await db(self._switch_version)(message_id)
        await self.send_json(
            {
                "type": "version.switched",
                "conversation_id": str(message.conversation_id),
                "message_id": message_id,
            }
        )

    def _switch_version(self, message_id):
        message = selectors.message_get_for_user(user=self.user, message_id=message_id)
        return services.version_switch(user=self.user, message=message)

    HANDLERS = {
        "ping": on_ping,
        "ask": on_ask,
        "stop": on_stop,
        "regenerate": on_regenerate,
        "edit": on_edit,
        "feedback": on_feedback,
        "switch_version": on_switch_version,
        "attach": on_attach,
    }

    # --- channel layer ----------------------------------------------------------------

    async def user_event(self, message):
        await self.safe_send(message["event"])
