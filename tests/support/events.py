"""Capturing what the code under test sends out: a user's events, and the tasks it queues.

Per-user events travel on the real channel layer (Redis) to the group
``accounts.events.user_group(user_id)``, which every tab of that user joins. A test joins it
too (:func:`capture_user_events`), or reads a tab's socket; both are :class:`Frames`.

Proving that nothing arrived needs no waiting: a channel-layer group delivers to each member
in the order the messages were sent, so :meth:`Frames.drained` sends a sentinel event to the
user and returns everything that came before it. If the sentinel arrived and nothing else came
first, nothing was sent to that user before the sentinel was.

:func:`queued_tasks` records the Celery tasks published while it is open (through Celery's
``before_task_publish`` signal: none of our code is patched) for tests that assert what was
queued without running a worker. The messages are still published; a worker started later
purges them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from celery.signals import before_task_publish
from channels.layers import get_channel_layer

from accounts.events import auser_event_send, user_group

SENTINEL = "test.sentinel"


class Closed(Exception):
    """The server closed the socket (``code`` is its close code)."""

    def __init__(self, code: int | None):
        super().__init__(f"socket closed with code {code}")
        self.code = code


class Frames:
    """A stream of one user's event dicts, read with deadlines.

    Subclasses say how the next dict arrives (:meth:`_next`) and set ``user_id``.
    """

    user_id: int

    def __init__(self) -> None:
        self.seen: list[dict] = []

    async def _next(self, timeout: float) -> dict:
        raise NotImplementedError

    async def recv(self, timeout: float = 10) -> dict:
        """The next frame; ``TimeoutError`` if none comes within ``timeout`` seconds."""
        frame = await self._next(timeout)
        self.seen.append(frame)
        return frame

    async def until(
        self, predicate: Callable[[dict], bool], timeout: float = 15, *, closed_ok: bool = False
    ) -> list[dict]:
        """Frames up to and including the first one matching ``predicate``; with ``closed_ok``,
        what came before the server closed the socket (without error)."""
        frames: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                frame = await self.recv(max(0.01, deadline - time.monotonic()))
            except Closed:
                if closed_ok:
                    return frames
                raise
            except TimeoutError:
                raise AssertionError(
                    f"no matching frame within {timeout} s; got {frames}"
                ) from None
            frames.append(frame)
            if predicate(frame):
                return frames

    async def until_type(self, *types: str, timeout: float = 15) -> list[dict]:
        return await self.until(lambda frame: frame.get("type") in types, timeout)

    async def frames_until(self, *types: str, timeout: float = 20) -> list[dict]:
        """Like :meth:`until_type`, but returns (without error) what came if the socket closes."""
        return await self.until(lambda frame: frame.get("type") in types, timeout, closed_ok=True)

    async def drained(self, timeout: float = 10) -> list[dict]:
        """Every frame that arrives before a sentinel event sent to this user now.

        ``[]`` proves that nothing reached this user through their events group before this
        call (frames the socket sends directly, such as an answer's stream, are included too
        when they came first)."""
        token = uuid.uuid4().hex
        await auser_event_send(user_ids=self.user_id, event={"type": SENTINEL, "token": token})
        frames = await self.until(
            lambda frame: frame.get("type") == SENTINEL and frame.get("token") == token, timeout
        )
        return frames[:-1]


class UserEvents(Frames):
    """The events sent to one user's group, as one more tab of theirs would get them."""

    def __init__(self, user_id: int, layer, channel: str) -> None:
        super().__init__()
        self.user_id, self.layer, self.channel = user_id, layer, channel

    async def _next(self, timeout: float) -> dict:
        message = await asyncio.wait_for(self.layer.receive(self.channel), timeout)
        return message["event"]


@contextlib.asynccontextmanager
async def capture_user_events(user_id: int) -> AsyncIterator[UserEvents]:
    """Joins ``user_id``'s events group on the real channel layer for the block's duration."""
    layer = get_channel_layer()
    channel = await layer.new_channel("test.events.")
    group = user_group(user_id)
    await layer.group_add(group, channel)
    try:
        yield UserEvents(user_id, layer, channel)
    finally:
        await layer.group_discard(group, channel)


# --- queued tasks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedTask:
    name: str
    args: tuple
    kwargs: dict


class QueuedTasks(list[QueuedTask]):
    @property
    def names(self) -> list[str]:
        return [task.name for task in self]

    def named(self, name: str) -> list[QueuedTask]:
        return [task for task in self if task.name == name]


@contextlib.contextmanager
def queued_tasks() -> Iterator[QueuedTasks]:
    """Records every task published (from any thread of this process) while the block runs.

    Tasks are published when the transaction that enqueued them commits
    (``assistant.project.tasking.enqueue_on_commit``), so use it in transactional tests or with
    ``django_capture_on_commit_callbacks(execute=True)``.
    """
    captured = QueuedTasks()
    lock = threading.Lock()

    def record(sender=None, body=None, **_):
        # Celery's message protocol 2: the body is (args, kwargs, embed).
        args, kwargs = (body[0], body[1]) if isinstance(body, list | tuple) else ((), {})
        with lock:
            captured.append(QueuedTask(name=sender, args=tuple(args), kwargs=dict(kwargs)))

    before_task_publish.connect(record, weak=False)
    try:
        yield captured
    finally:
        before_task_publish.disconnect(record)
