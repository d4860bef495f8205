"""Runs answers independently of the socket that asked for them.

An answer is an asyncio task in the web process that received the question. It forwards the
pipeline's events to the asking tab while that tab is connected (deltas batched), and keeps
going when the tab goes away: the pipeline saves the answer whatever happens. Stop works from
any tab and any process: locally by cancelling the task, elsewhere through a short-lived Redis
flag that the generating process watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from django.conf import settings

from assistant import selectors, services
from assistant.answering import extractive, replay
from assistant.answering.pipeline import answer_stream, message_dict
from assistant.models import Message
from assistant.project.threads import db

logger = logging.getLogger(__name__)

Send = Callable[[dict], Awaitable[None]]

FLUSH_SECONDS = 0.03  # deltas are sent at most this often (and at every other event)
FLUSH_CHARS = 400
STOP_POLL_SECONDS = 0.25
STOP_TTL_SECONDS = 120

_running: dict[str, asyncio.Task] = {}  # message id -> the task generating it, in this process
_redis: tuple[asyncio.AbstractEventLoop, aioredis.Redis] | None = None


def _client() -> aioredis.Redis:
    """The process's Redis client, one per event loop: an asyncio connection belongs to the
    loop that opened it (one loop in a server; tests run a loop per test)."""
    global _redis
    loop = asyncio.get_running_loop()
    if _redis is None or _redis[0] is not loop:
        _redis = (loop, aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=2))
    return _redis[1]


def _stop_key(message_id: str) -> str:
    return f"assistant:stop:{message_id}"


class DeltaBatcher:
    """Joins deltas into one frame per ~30 ms so the socket is not flooded token by token."""

    def __init__(self, send: Send, message_id: str) -> None:
        self.send = send
        self.message_id = message_id
        self.parts: list[str] = []
        self.size = 0
        self.timer: asyncio.TimerHandle | None = None
        # One batch goes out at a time, in order: a timer's flush still recording and sending
        # its batch would otherwise be overtaken by the next one (tabs got scrambled text).
        self.sending = asyncio.Lock()

    def add(self, text: str) -> Awaitable[None] | None:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= FLUSH_CHARS:
            return self.flush()
        if self.timer is None:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(FLUSH_SECONDS, lambda: asyncio.ensure_future(self.flush()))
        return None

    async def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        async with self.sending:
            if not self.parts:
                return
            text, self.parts, self.size = "".join(self.parts), [], 0
            await self.send({"type": "delta", "message_id": self.message_id, "text": text})


async def _run(
    *,
    user,
    question,
    send: Send,
    collection_ids,
    started: asyncio.Event,
    box: dict,
    request_id: str,
    use_cache: bool = True,
) -> None:
    batcher: DeltaBatcher | None = None
    watcher: asyncio.Task | None = None
    emit = send  # after ``retrieval``: sends each frame, then records it for tabs that attach
    stream = answer_stream(
        user=user, question=question, collection_ids=collection_ids, use_cache=use_cache
    )
    try:
        # aclosing: a stop while a frame is being sent closes the model request at once.
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if event.type == "retrieval":
                    box["message_id"] = event.message_id
                    _running[event.message_id] = asyncio.current_task()
                    watcher = asyncio.create_task(
                        watch_stop(event.message_id, asyncio.current_task())
                    )
                    emit = _recording(send, replay.Recorder(_client(), event.message_id))
                    batcher = DeltaBatcher(emit, event.message_id)
                    started.set()
                    await send(event.as_dict())
                    continue
                if event.type == "delta" and batcher is not None:
                    pending = batcher.add(event.text)
                    if pending is not None:
                        await pending
                    continue
                if batcher is not None:
                    await batcher.flush()
                frame = event.as_dict()
                if event.type == "error":
                    frame["request_id"] = request_id
                await emit(frame)
    except asyncio.CancelledError:
        if batcher is not None:
            await batcher.flush()
        await emit(
            {
                "type": "done",
                "message": {"id": box.get("message_id"), "status": "stopped"},
                "usage": {},
                "timings": {},
            }
        )
    except Exception:
        logger.exception("answer generation crashed", extra={"question_id": str(question.pk)})
        if batcher is not None:  # the text so far first: nothing may follow the error
            await batcher.flush()
        await emit(
            {
                "type": "error",
                "code": "internal",
                "message": "Something went wrong while answering.",
                "message_id": box.get("message_id"),
                "request_id": request_id,
            }
        )
    finally:
        started.set()
        if watcher is not None:
            watcher.cancel()
        if box.get("message_id"):
            _running.pop(box["message_id"], None)


def _recording(send: Send, recorder: replay.Recorder) -> Send:
    async def emit(frame: dict) -> None:
        # Sent first: the asking tab's frames never wait on Redis; the record follows in order.
        try:
            await send(frame)
        finally:
            recorder.record(frame)

    return emit


async def follow_answer(*, message, send: Send) -> None:
    """Follows an answer from another tab (``attach``): the text so far, then its live frames
    until it ends; an answer no longer being written gets its final ``done`` at once.
    ``message``: an answer its owner may read (the caller checked)."""
    message_id = str(message.pk)
    final = await db(_final_frame)(message)
    if final is not None:
        await send(final)
        return

    async def finished() -> dict | None:
        return await db(lambda: _final_frame(Message.objects.get(pk=message.pk)))()

    try:
        await replay.follow(
            client=_client(),
            message_id=message_id,
            conversation_id=str(message.conversation_id),
            saved_text=message.content,
            send=send,
            finished=finished,
        )
    except Exception:  # Redis went away: the answer itself carries on and is saved
        logger.exception("following an answer failed", extra={"message_id": message_id})
        await send(
            {
                "type": "error",
                "code": "internal",
                "message": "This answer can no longer be followed live; it appears when finished.",
                "message_id": message_id,
            }
        )


def _final_frame(message) -> dict | None:
    """The ``done`` frame of an answer no longer being written (None while it is); one whose
    writer died is interrupted, as the conversation API shows it."""
    if message.status == Message.Status.STREAMING and not selectors.is_stale_stream(message):
        return None
    final = message_dict(message)
    # The citation check's marks say what passages do not contain; access may have changed since
    # the answer was written, so a follower gets them only from the conversation API, which
    # keeps the marks about passages the reader can still read.
    final["unsupported"] = []
    if extractive.is_extractive(message.model):
        # Nothing but quoted passages: a quote the owner can no longer read gives way to a note,
        # as in the conversation API.
        access = selectors.passage_access_for(user=message.conversation.owner, messages=[message])
        sources = [
            s
            if access.readable(s.get("source_id"), s.get("collection_id"))
            else {"n": s.get("n"), "unavailable": True}
            for s in message.sources or []
            if isinstance(s, dict)
        ]
        final["content"] = extractive.visible_content(message.model, message.content, sources)
    if message.status == Message.Status.STREAMING:
        final.update(status=Message.Status.FAILED, error=services.INTERRUPTED)
    timings = {
        "retrieval_ms": message.retrieval_ms,
        "first_token_ms": message.first_token_ms,
        "total_ms": message.total_ms,
    }
    return {"type": "done", "message": final, "usage": {}, "timings": timings}


async def watch_stop(message_id: str, task: asyncio.Task) -> None:
    """Cancels ``task`` (the one writing answer ``message_id``) when a Stop for it arrives from
    any process (a Redis flag, polled); ends when the task does. Every door that streams an
    answer runs one, so a Stop from the chat page reaches an answer an API client is reading."""
    key = _stop_key(message_id)
    failing = False
    while not task.done():
        await asyncio.sleep(STOP_POLL_SECONDS)
        try:
            if await _client().exists(key):
                task.cancel()
                return
            failing = False
        except Exception:  # Redis hiccup: keep generating, try again
            if not failing:  # once per outage, not four times a second per answer
                logger.warning("stop flag check failed", exc_info=True)
            failing = True


async def start_answer(
    *, user, question, send: Send, collection_ids=None, request_id: str = "", use_cache: bool = True
) -> str | None:
    """Starts generating; returns the answer's message id once the answer row exists.
    ``use_cache=False`` asks the model afresh (see ``answering.cache``)."""
    started, box = asyncio.Event(), {}
    task = asyncio.create_task(
        _run(
            user=user,
            question=question,
            send=send,
            collection_ids=collection_ids,
            started=started,
            box=box,
            request_id=request_id,
            use_cache=use_cache,
        )
    )
    _keep.add(task)
    task.add_done_callback(_keep.discard)
    await started.wait()
    return box.get("message_id")


_keep: set[asyncio.Task] = set()  # strong references: a task nobody holds may be collected


async def request_stop(message_id: str) -> None:
    task = _running.get(message_id)
    if task is not None:
        task.cancel()
        return
    await _client().set(_stop_key(message_id), "1", ex=STOP_TTL_SECONDS)


def is_running_here(message_id: str) -> bool:
    return message_id in _running
