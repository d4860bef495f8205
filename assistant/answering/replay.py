"""A short replay buffer of each answer being written, so a tab (re)opened mid-answer follows it.

The process generating an answer records every frame it sends the asking tab after
``retrieval`` (batched deltas, citations, the final ``done`` or ``error``) in a Redis stream
keyed by the answer's id, capped in entries and expiring soon after the answer ends. Any web
process can then replay it to another tab: the text so far in one ``attached`` frame, then the
live frames in order. Each delta carries its offset in the answer's text, so the text so far
can start from the answer's saved checkpoint when the oldest entries were trimmed, and no text
is sent twice or skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

logger = logging.getLogger(__name__)

Send = Callable[[dict], Awaitable[None]]

MAX_ENTRIES = 4096  # a 30 ms batch each: minutes of writing; older entries come from the checkpoint
TTL_SECONDS = 600  # renewed at every entry while the answer is written
FINISHED_TTL_SECONDS = 60  # a tab reloaded just as the answer ended still gets its end
BLOCK_MS = 1000  # how long a follower waits for a frame before looking at the answer's row
TERMINAL = ("done", "error")


def buffer_key(message_id: str) -> str:
    return f"assistant:answer:{message_id}:frames"


class Recorder:
    """Records one answer's frames, after they were sent: the asking tab never waits on Redis.

    ``record`` only queues the entry (its offset taken in the order frames were sent); one
    writer task per answer appends the queue to the stream in that order, many entries per
    round trip when Redis is slower than the answer. A failing Redis never fails the answer:
    only a follower then misses frames and falls back to the saved answer.
    """

    def __init__(self, client: aioredis.Redis, message_id: str) -> None:
        self.client = client
        self.key = buffer_key(message_id)
        self.offset = 0
        self._queue: asyncio.Queue[dict] = asyncio.Queue()
        self._writer: asyncio.Task | None = None

    def record(self, frame: dict) -> None:
        entry: dict = {"frame": frame}
        if frame.get("type") == "delta":
            entry["offset"] = self.offset
            self.offset += len(frame.get("text") or "")
        self._queue.put_nowait(entry)
        if self._writer is None:
            # Its own task: a stop cancelling the answer still lets the final frames be written.
            self._writer = asyncio.create_task(self._write())
            _writers.add(self._writer)
            self._writer.add_done_callback(_writers.discard)

    async def drained(self) -> None:
        """Waits until everything recorded so far was written (or given up on)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(), TTL_SECONDS)
            except TimeoutError:
                return  # the answer's writer vanished without an end: the key expires
            entries = [first]
            while not self._queue.empty():
                entries.append(self._queue.get_nowait())
            ended = any(e["frame"].get("type") in TERMINAL for e in entries)
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for entry in entries:
                        pipe.xadd(
                            self.key, {"e": json.dumps(entry)}, maxlen=MAX_ENTRIES, approximate=True
                        )
                    pipe.expire(self.key, FINISHED_TTL_SECONDS if ended else TTL_SECONDS)
                    await pipe.execute()
            except Exception:
                logger.warning("answer replay buffer write failed", exc_info=True)
            if ended:
                return


# The running writers, so none is garbage-collected mid-write (asyncio keeps weak references).
_writers: set[asyncio.Task] = set()


class _Text:
    """The answer's text as sent to the follower: deltas are placed by their offset, so a piece
    already covered (by the checkpoint or an earlier delta) is not sent again."""

    def __init__(self, start: str) -> None:
        self.text = start
        self.position = len(start)

    def add(self, offset: int, piece: str) -> str:
        end = offset + len(piece)
        if end <= self.position:
            return ""
        new = piece[max(0, self.position - offset) :]
        self.text += new
        self.position = end
        return new


def _decode(fields: dict) -> dict:
    raw = fields.get(b"e") or fields.get("e") or b"{}"
    return json.loads(raw)


async def follow(
    *,
    client: aioredis.Redis,
    message_id: str,
    conversation_id: str,
    saved_text: str,
    send: Send,
    finished: Callable[[], Awaitable[dict | None]],
) -> None:
    """Sends ``attached`` (the text so far and the citations made) then the live frames of
    the answer, until its ``done`` or ``error``.

    ``saved_text``: the answer's checkpointed text, read before the buffer (it may run ahead
    of the buffer by a batch, never behind its first entry unless entries were trimmed).
    ``finished``: the final ``done`` frame when the answer is no longer being written (its row
    says so, or its writer died), else None; asked whenever the buffer stays silent.
    """
    key = buffer_key(message_id)
    text = _Text(saved_text)
    citations: dict[int, dict] = {}
    end: dict | None = None
    last_id = "0-0"
    for entry_id, fields in await client.xrange(key):
        last_id = entry_id
        entry = _decode(fields)
        frame = entry.get("frame") or {}
        if frame.get("type") == "delta":
            text.add(entry.get("offset", text.position), frame.get("text") or "")
        elif frame.get("type") == "citation":
            citations.setdefault(frame.get("number"), frame)
        elif frame.get("type") in TERMINAL:
            end = frame
    await send(
        {
            "type": "attached",
            "message_id": message_id,
            "conversation_id": conversation_id,
            "text": text.text,
            "citations": list(citations.values()),
        }
    )
    if end is not None:
        await send(end)
        return
    while True:
        result = await client.xread({key: last_id}, block=BLOCK_MS, count=100)
        if not result:
            final = await finished()
            if final is not None:
                # Ended between two reads (or its writer died): what was saved beyond the
                # text sent comes as one last delta, so a stopped answer is whole too.
                content = (final.get("message") or {}).get("content") or ""
                if content.startswith(text.text) and len(content) > len(text.text):
                    rest = text.add(len(text.text), content[len(text.text) :])
                    await send({"type": "delta", "message_id": message_id, "text": rest})
                await send(final)
                return
            continue
        for entry_id, fields in result[0][1]:
            last_id = entry_id
            entry = _decode(fields)
            frame = entry.get("frame") or {}
            if frame.get("type") == "delta":
                new = text.add(entry.get("offset", text.position), frame.get("text") or "")
                if new:
                    await send({"type": "delta", "message_id": message_id, "text": new})
            elif frame.get("type") == "citation":
                if frame.get("number") not in citations:
                    citations[frame.get("number")] = frame
                    await send(frame)
            elif frame.get("type") in TERMINAL:
                await send(frame)
                return
