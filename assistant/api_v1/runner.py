"""Runs the answering pipeline for one API request and turns its events into OpenAI's shapes.

The pipeline (``answering.pipeline.answer_stream``, the one every door uses) runs in a task of
its own and hands its events over through a queue. The HTTP response reads the queue; when the
client goes away (Django cancels the response, or the response's iterator is closed), the
reader cancels the task: the model request is closed and the answer is stored as stopped with
its text so far, exactly as the chat's Stop does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from assistant import llm, services
from assistant.answering import generation
from assistant.answering.events import ErrorEvent, Event
from assistant.answering.pipeline import answer_stream
from assistant.api_v1 import protocol
from assistant.project.threads import db
from knowledge.selectors import collections_readable_by

logger = logging.getLogger(__name__)

LinkFor = Callable[[dict], str]  # a cited source -> the passage's page on this assistant

# The pipeline's error codes, as HTTP statuses for a non-streaming request.
ERROR_STATUS = {"llm_unavailable": 503, "llm_stream_broken": 502, "retrieval_failed": 503}

_END = object()
_keep: set[asyncio.Task] = set()  # strong references: a task nobody holds may be collected


@dataclass
class Run:
    """One answer being written; read its events once, with ``events()``."""

    user: object
    conversation_id: str
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    task: asyncio.Task | None = None

    async def events(self) -> AsyncIterator[Event]:
        try:
            while True:
                item = await self.queue.get()
                if item is _END:
                    return
                yield item
        finally:
            # Reached early only when the reader stopped reading: the client went away.
            if self.task is not None and not self.task.done():
                self.task.cancel()


def start(
    *, user, question, collection_ids: list[int], config: llm.LLMConfig, claimed: bool
) -> Run:
    """Starts answering ``question`` (already stored) with ``collection_ids`` as the whole
    scope (never None: a token reads only what it was given). ``claimed``: the conversation was
    claimed by ``services.api_question_ask``; the claim ends at the first event, when the answer
    row that makes the conversation busy exists (or the answer ended without one)."""
    run = Run(user=user, conversation_id=str(question.conversation_id))

    async def produce() -> None:
        held = claimed
        watcher: asyncio.Task | None = None
        try:
            # The token's collections bound the history too, and a token's door neither reads
            # nor changes the person's memory.
            stream = answer_stream(
                user=user,
                question=question,
                collection_ids=collection_ids,
                config=config,
                history_scope=collection_ids,
                memory=False,
            )
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    if held:
                        held = False
                        await db(services.conversation_release)(
                            conversation_id=question.conversation_id
                        )
                    if event.type == "retrieval" and event.message_id and watcher is None:
                        # A Stop from the chat page (any process) ends this answer too.
                        watcher = asyncio.create_task(
                            generation.watch_stop(event.message_id, asyncio.current_task())
                        )
                    run.queue.put_nowait(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("API answer crashed", extra={"question_id": str(question.pk)})
            run.queue.put_nowait(
                ErrorEvent(code="internal", message="Something went wrong while answering.")
            )
        finally:
            if watcher is not None:
                watcher.cancel()
            if held:
                await asyncio.shield(
                    db(services.conversation_release)(conversation_id=question.conversation_id)
                )
            run.queue.put_nowait(_END)

    run.task = asyncio.create_task(produce())
    _keep.add(run.task)
    run.task.add_done_callback(_keep.discard)
    return run


def citations_for(*, user, cited: list[dict], link_for: LinkFor) -> list[dict]:
    """The cited passages in the API's shape, with their collections' names (only collections
    ``user`` reads: a passage was given to them from those)."""
    ids = {s.get("collection_id") for s in cited}
    names = dict(collections_readable_by(user).filter(pk__in=ids).values_list("id", "name"))
    return [
        protocol.citation(s, collection=names.get(s.get("collection_id")), link=link_for(s))
        for s in sorted(cited, key=lambda s: s["n"])
    ]


@dataclass
class _Answer:
    id: str = ""
    parts: list[str] = field(default_factory=list)
    cited: list[dict] = field(default_factory=list)
    usage: dict = field(default_factory=dict)
    error: ErrorEvent | None = None


def _error_of(event: ErrorEvent) -> protocol.ApiError:
    return protocol.ApiError(
        ERROR_STATUS.get(event.code, 500), event.message, code=event.code, kind="server_error"
    )


async def sse(
    run: Run, *, max_tokens: int, include_usage: bool, link_for: LinkFor
) -> AsyncIterator[bytes]:
    """The answer as server-sent events: ``chat.completion.chunk`` objects, the last one with
    ``finish_reason`` and the ``citations``, then ``data: [DONE]``. An error after the stream
    began is one ``{"error": ...}`` event (the openai client raises it)."""
    created = protocol.now()
    answer = _Answer(id=protocol.completion_id(None))
    extra = {"conversation_id": run.conversation_id}

    def chunk(delta: dict, **more) -> bytes:
        return protocol.sse(
            protocol.chunk(id=answer.id, created=created, delta=delta, **more, **extra)
        )

    ended = False
    # aclosing: a client gone mid-stream closes the reader at once, which stops the answer.
    async with contextlib.aclosing(run.events()) as events:
        async for event in events:
            if event.type == "retrieval":
                answer.id = protocol.completion_id(event.message_id)
                yield chunk({"role": "assistant", "content": ""})
            elif event.type == "delta":
                yield chunk({"content": event.text})
            elif event.type == "citation":
                answer.cited.append(event.source)
            elif event.type == "done":
                citations = await db(citations_for)(
                    user=run.user, cited=answer.cited, link_for=link_for
                )
                reason = protocol.finish_reason(event.usage, max_tokens)
                yield chunk({}, finish_reason=reason, citations=citations)
                if include_usage:
                    usage = protocol.usage_from(event.usage)
                    yield protocol.sse(
                        protocol.usage_chunk(id=answer.id, created=created, usage=usage, **extra)
                    )
            elif event.type == "error":
                yield protocol.sse(_error_of(event).body())
                ended = True
            if event.type == "done":
                ended = True
    if not ended and answer.id:
        # Stopped (the chat page's Stop): what was written, with what it cited so far.
        citations = await db(citations_for)(user=run.user, cited=answer.cited, link_for=link_for)
        yield chunk({}, finish_reason="stop", citations=citations)
    yield protocol.SSE_DONE


async def complete(run: Run, *, max_tokens: int, link_for: LinkFor) -> dict:
    """The whole answer as one ``chat.completion`` (raises ``ApiError`` if it failed)."""
    answer = _Answer()
    async with contextlib.aclosing(run.events()) as events:
        async for event in events:
            if event.type == "retrieval":
                answer.id = protocol.completion_id(event.message_id)
            elif event.type == "delta":
                answer.parts.append(event.text)
            elif event.type == "citation":
                answer.cited.append(event.source)
            elif event.type == "done":
                answer.usage = event.usage
            elif event.type == "error":
                answer.error = event
    if answer.error is not None:
        raise _error_of(answer.error)
    citations = await db(citations_for)(user=run.user, cited=answer.cited, link_for=link_for)
    return protocol.completion(
        id=answer.id or protocol.completion_id(None),
        created=protocol.now(),
        content="".join(answer.parts),
        finish_reason=protocol.finish_reason(answer.usage, max_tokens),
        usage=protocol.usage_from(answer.usage),
        citations=citations,
        conversation_id=run.conversation_id,
    )
