"""The WebSocket door. Thin: authenticate, join the user's group, forward events."""

from __future__ import annotations

import json

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.events import user_group

CLOSE_UNAUTHENTICATED = 4401
MAX_MESSAGE_BYTES = 64 * 1024


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """One per browser tab: carries the user's own events (progress, conversation updates)."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user_id": user.pk})

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        # Bad frames get an error reply; they must never take the socket down.
        if text_data is None or len(text_data) > MAX_MESSAGE_BYTES:
            await self.send_json({"type": "error", "code": "invalid_message"})
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.send_json({"type": "error", "code": "invalid_json"})
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict) or content.get("type") != "ping":
            await self.send_json({"type": "error", "code": "unknown_message"})
            return
        await self.send_json({"type": "pong"})

    async def user_event(self, message):
        await self.send_json(message["event"])
