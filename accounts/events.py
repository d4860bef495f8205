"""Per-user events: the one place that pushes coarse events to a user's open browser tabs.

Events are small JSON dicts with a ``type``. They are sent only after the surrounding
transaction commits, so a rolled-back change never shows up in anyone's browser. Each
user's tabs join the channel-layer group :func:`user_group`; nothing else joins it.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"user.{int(user_id)}"


def _send_now(user_ids: list[int], event: dict) -> None:
    layer = get_channel_layer()
    for user_id in user_ids:
        try:
            async_to_sync(layer.group_send)(
                user_group(user_id), {"type": "user.event", "event": event}
            )
        except Exception:  # a push is best effort: the page also reloads state over HTTP
            logger.warning(
                "event push failed", exc_info=True, extra={"event_type": event.get("type")}
            )


def user_event_send(*, user_ids: list[int] | int, event: dict) -> None:
    """Queues ``event`` for the users' tabs, delivered once the current transaction commits."""
    if "type" not in event:
        raise ValueError("events need a 'type'")
    ids = [user_ids] if isinstance(user_ids, int) else list(user_ids)
    transaction.on_commit(lambda: _send_now(ids, event))


async def auser_event_send(*, user_ids: list[int] | int, event: dict) -> None:
    """Async twin for code that already runs outside a transaction (consumers, the pipeline)."""
    if "type" not in event:
        raise ValueError("events need a 'type'")
    ids = [user_ids] if isinstance(user_ids, int) else list(user_ids)
    layer = get_channel_layer()
    for user_id in ids:
        await layer.group_send(user_group(user_id), {"type": "user.event", "event": event})
