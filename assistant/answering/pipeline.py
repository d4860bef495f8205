"""The answering pipeline: (user, question) -> a stream of events. One pipeline, many doors.

Order matters: the question is already stored (``services.question_create``) before this
runs; the answer row is created before the model is called and finished in every outcome
(complete, stopped by the consumer, failed), keeping whatever text was produced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings

from assistant import llm, selectors, services
from assistant.answering import cache, extractive, grounding, metrics, prompts, saving
from assistant.answering.citations import CitationStreamParser
from assistant.answering.events import (
    CitationEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    RetrievalEvent,
)
from assistant.memory import selectors as memory_selectors
from assistant.memory import services as memory_services
from assistant.models import Message
from assistant.project.threads import db
from knowledge import embeddings
from knowledge.retrieval import SearchHit, search_chunks_for_user

CHECKPOINT_SECONDS = 1.0  # how often a streaming answer's text is saved

log = logging.getLogger(__name__)


def search_query(question: str, history: list[llm.ChatMessage]) -> str:
    """A follow-up ("and on Linux?") is searched together with the previous question."""
    previous = [t.content for t in history if t.role == "user"]
    if previous and len(question.split()) < 15:
        return f"{previous[-1]}\n{question}"
    return question


def relevant(hits: list[SearchHit], min_similarity: float) -> list[SearchHit]:
    return [h for h in hits if h.similarity is None or h.similarity >= min_similarity]


@dataclass
class _Retrieved:
    history: list[llm.ChatMessage]
    hits: list[SearchHit]
    search_timings: dict
    remembered: list[dict]
    knowledge_versions: dict[int, int]  # the collections searched, at the version read
    first_question: bool


def _retrieve(
    user,
    question: Message,
    collection_ids,
    shared: bool = False,
    history_scope: Collection[int] | None = None,
    memory: bool = True,
) -> _Retrieved:
    # A shared answer (a Slack channel) is read by many people: nothing private goes into its
    # prompt, so neither the stored history (nor its summary) nor memory items are loaded.
    history = (
        []
        if shared
        else selectors.history_for_prompt(user=user, question=question, scope=history_scope)
    )
    query = search_query(question.content, history)
    result = search_chunks_for_user(
        user=user, query=query, k=settings.RETRIEVAL_TOP_K, collection_ids=collection_ids
    )
    remembered = []
    if memory and not shared:
        same_text = query.strip() == question.content.strip()  # retrieval strips the query
        remembered = [
            {"id": item.pk, "text": item.text}
            # How to answer (preferences) always, facts when relevant to the question.
            for item in memory_selectors.items_for_answer(
                user=user,
                query=question.content,
                limit=settings.MEMORY_TOP_K,
                query_vector=result.query_vector if same_text else None,
            )
        ]
    return _Retrieved(
        history=history,
        hits=relevant(result.hits, settings.RETRIEVAL_MIN_SIMILARITY),
        search_timings=result.timings_ms,
        remembered=remembered,
        knowledge_versions=result.knowledge_versions,
        first_question=shared or selectors.is_first_question(question),
    )


SHARED_MEMORY_REPLY = (
    "Memory commands work only in a direct message or on the web, since everyone here would "
    "read what I remember about you."
)


API_MEMORY_REPLY = (
    "Memory commands work only on the web and in Slack direct messages: what an API client or "
    "an agent sends is not something I remember about you."
)


def _memory_command(
    user, question: Message, shared: bool = False, memory: bool = True
) -> str | None:
    """Handles "remember that ..." / "forget ..." and returns the reply, or None if not one."""
    command = memory_services.parse_command(question.content)
    if command is None:
        return None
    if not memory:
        return API_MEMORY_REPLY
    if shared:
        # "forget ..." replies with the forgotten items: never in a place many people read.
        return SHARED_MEMORY_REPLY
    if not memory_selectors.is_enabled(user):
        return "Memory is paused, so I won't remember or use anything. You can turn it back on under Memory."
    if command.action == "forget":
        forgotten = memory_services.forget(user=user, text=command.text)
        if not forgotten:
            return "I didn't find anything like that in what I remember about you."
        return "Done — I forgot:\n" + "\n".join(f"- {text}" for text in forgotten)
    try:
        item = memory_services.remember(user=user, text=command.text, source_message=question)
    except memory_services.MemoryRefused as exc:
        return str(exc)
    return f"Got it — I'll remember: {item.text}"


async def answer_stream(
    *,
    user,
    question: Message,
    collection_ids: list[int] | None = None,
    config: llm.LLMConfig | None = None,
    shared: bool = False,
    thread_context: Sequence[tuple[str, str]] = (),
    use_cache: bool = True,
    allow_extractive: bool = True,
    history_scope: Collection[int] | None = None,
    memory: bool = True,
) -> AsyncIterator[Event]:
    """Answers ``question`` as ``user``.

    ``shared``: the answer is posted where many people read it (a Slack channel). Its prompt
    then holds no memory items, no conversation summary and no stored history, and the answer
    feeds no memory extraction. ``thread_context``: (author, text) of other messages in that
    place, given to the model as quoted context with their authors, never as the asker's turns.
    Malformed ``thread_context`` raises ``ValueError`` before the answer is started.
    ``use_cache``: False asks the model afresh (regenerate, evaluation) instead of reusing an
    identical recent question's answer (``answering.cache``); the fresh answer is still stored.
    ``allow_extractive``: when every model attempt fails before its first token, answer with
    the best passages quoted (``answering.extractive``) instead of failing; False (evaluation,
    which measures the model) keeps the failure.
    ``history_scope``: the collections a token may read (its whole reach): earlier answers in
    the conversation whose passages lie outside it reach the model only as a placeholder, and
    a summary covering one is not sent. ``memory``: False (a token's doors) neither reads,
    changes nor learns what the assistant remembers about the person.
    """
    started = time.perf_counter()
    context = prompts.clean_thread_context(thread_context)
    config = config or llm.LLMConfig.from_settings()
    budget = prompts.Budget(settings.LLM_CONTEXT_TOKENS, config.max_tokens)
    learn = memory and not shared
    reply = await db(_memory_command)(user, question, shared, memory)
    if reply is not None:
        async for event in _fixed_answer(question, reply, started, learn=learn):
            yield event
        return
    try:
        found = await db(_retrieve)(user, question, collection_ids, shared, history_scope, memory)
    except embeddings.EmbeddingError as exc:
        yield ErrorEvent(code="retrieval_failed", message=f"Searching the knowledge failed: {exc}")
        return
    history, hits, search_timings, remembered = (
        found.history,
        found.hits,
        found.search_timings,
        found.remembered,
    )
    retrieval_ms = (time.perf_counter() - started) * 1000
    metrics.search_observe(search_timings)
    sources = prompts.number_sources(hits, budget.sources_tokens)
    shown = prompts.public_sources(sources)
    cache_key = None
    if (
        sources
        and cache.enabled()
        and found.first_question
        and not (history or remembered or context)
    ):
        # Nothing personal is in this prompt (not even the name), so its answer can be shared
        # with whoever asks the same thing over exactly the same knowledge.
        cache_key = cache.key(
            question=question.content, knowledge_versions=found.knowledge_versions, config=config
        )
        cached = (
            await db(cache.lookup)(key=cache_key, collection_ids=list(found.knowledge_versions))
            if use_cache
            else None
        )
        if cached is not None:
            async for event in _cached_answer(
                question, cached, started, retrieval_ms, search_timings, learn
            ):
                yield event
            return
    answer = await db(services.answer_start)(
        question=question, sources=shown, memory_used=remembered
    )
    message_id = str(answer.pk)
    yield RetrievalEvent(
        conversation_id=str(question.conversation_id),
        question_id=str(question.pk),
        message_id=message_id,
        sources=shown,
        memory=remembered,
    )
    # Only coarse totals reach clients; the search's stage timings go to metrics and the log.
    timings = {"retrieval_ms": retrieval_ms}

    if not sources:
        text = prompts.nothing_found_text()
        yield DeltaEvent(message_id=message_id, text=text)
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        final = await db(services.answer_finish)(
            message_id=answer.pk,
            content=text,
            status=Message.Status.COMPLETE,
            timings=timings,
            learn=learn,
        )
        metrics.answer_log(
            message_id=message_id,
            status=final.status,
            timings=timings,
            search_timings=search_timings,
        )
        yield DoneEvent(message=message_dict(final), usage={}, timings=timings)
        return

    messages = prompts.build_messages(
        question=question.content,
        sources=sources,
        history=prompts.trim_history(history, budget.history_tokens),
        user_name="" if cache_key else user.get_short_name(),
        memory=[m["text"] for m in remembered],
        thread_context=prompts.trim_thread_context(context, budget.history_tokens),
    )
    parser = CitationStreamParser({s["n"] for s in sources})
    by_number = {s["n"]: s for s in shown}
    state = _AnswerState()
    stream = llm.stream_chat(messages, config=config)
    quoted = ""  # the extractive answer, when no model wrote a word
    try:
        async for item in stream:
            if isinstance(item, llm.Completion):
                state.completion = item
                continue
            if state.first_token_ms is None:
                state.first_token_ms = (time.perf_counter() - started) * 1000
            for event in state.take(parser.feed(item.text), by_number, message_id):
                yield event
            if time.monotonic() - state.saved_at > CHECKPOINT_SECONDS:
                state.saved_at = time.monotonic()
                await saving.answer_checkpoint(message_id=answer.pk, content=state.text)
        for event in state.take(parser.finish(), by_number, message_id):
            yield event
        # Inside the try: a stop pressed while the check runs still stores the answer as stopped.
        state.unsupported = await _unsupported_sentences(state, sources)
    except llm.LLMError as exc:
        for event in state.take(parser.finish(), by_number, message_id):
            yield event
        if allow_extractive and state.first_token_ms is None:
            quoted = extractive.answer_text(shown)
        if not quoted:
            timings.update(state.timings(started))
            # Shielded: a cancel during the save's retries must not lose what was written.
            await asyncio.shield(
                _finish(
                    answer,
                    state,
                    Message.Status.FAILED,
                    timings,
                    config,
                    learn,
                    error=exc.user_message,
                )
            )
            metrics.answer_log(
                message_id=message_id,
                status=Message.Status.FAILED,
                timings=timings,
                search_timings=search_timings,
            )
            yield ErrorEvent(
                code="llm_unavailable" if not state.text else "llm_stream_broken",
                message=exc.user_message,
                message_id=message_id,
                sources=[{**s, "generated": False} for s in shown],
            )
            return
        # No model wrote a word (retries and the fallback included): the passages found for
        # this person still answer better than an error (answered below, outside this handler).
        log.warning("no model answered (%.200s); answering with the passages", exc)
    except (asyncio.CancelledError, GeneratorExit):
        # Stopped by the user (task cancelled) or the consumer closed the stream: keep the text.
        await stream.aclose()
        timings.update(state.timings(started))
        await asyncio.shield(_finish(answer, state, Message.Status.STOPPED, timings, config, learn))
        metrics.answer_log(
            message_id=message_id,
            status=Message.Status.STOPPED,
            timings=timings,
            search_timings=search_timings,
        )
        raise
    if quoted:
        async for event in _extractive_answer(answer, sources, shown, quoted, started, timings):
            yield event
        metrics.answer_log(
            message_id=message_id,
            status=Message.Status.COMPLETE,
            timings=timings,
            search_timings=search_timings,
        )
        return
    timings.update(state.timings(started))
    # Shielded: a cancel (a client gone, a Stop) during the save's retries (the database coming
    # back) must not lose a finished answer.
    final = await asyncio.shield(
        _finish(answer, state, Message.Status.COMPLETE, timings, config, learn)
    )
    if cache_key and not final.unsupported:
        await db(cache.store)(key=cache_key, message=final)
    metrics.answer_log(
        message_id=message_id, status=final.status, timings=timings, search_timings=search_timings
    )
    completion = state.completion
    usage = {
        "prompt_tokens": completion.prompt_tokens if completion else None,
        "completion_tokens": completion.completion_tokens if completion else None,
        "model": completion.model if completion else config.model,
    }
    yield DoneEvent(message=message_dict(final), usage=usage, timings=timings)


async def _fixed_answer(
    question: Message, text: str, started: float, learn: bool
) -> AsyncIterator[Event]:
    """An answer that needs no model (a memory command): stored and streamed like any other."""
    answer = await db(services.answer_start)(question=question, sources=[])
    message_id = str(answer.pk)
    yield RetrievalEvent(
        conversation_id=str(question.conversation_id),
        question_id=str(question.pk),
        message_id=message_id,
        sources=[],
    )
    yield DeltaEvent(message_id=message_id, text=text)
    timings = {"total_ms": (time.perf_counter() - started) * 1000}
    final = await db(services.answer_finish)(
        message_id=answer.pk,
        content=text,
        status=Message.Status.COMPLETE,
        timings=timings,
        learn=learn,
    )
    yield DoneEvent(message=message_dict(final), usage={}, timings=timings)


async def _cached_answer(
    question: Message,
    cached: Message,
    started: float,
    retrieval_ms: float,
    search_timings: dict,
    learn: bool,
) -> AsyncIterator[Event]:
    """An identical recent question's answer (``answering.cache``), given at once and stored
    as this conversation's own answer, marked ``from_cache``."""
    shown = cached.sources
    numbers = await db(cache.cited_numbers)(cached)
    by_number = {s["n"]: s for s in shown}
    cited = [by_number[n] for n in numbers if n in by_number]
    answer = await db(services.answer_start)(question=question, sources=shown)
    message_id = str(answer.pk)
    yield RetrievalEvent(
        conversation_id=str(question.conversation_id),
        question_id=str(question.pk),
        message_id=message_id,
        sources=shown,
    )
    first_token_ms = (time.perf_counter() - started) * 1000
    yield DeltaEvent(message_id=message_id, text=cached.content)
    for source in cited:
        yield CitationEvent(message_id=message_id, number=source["n"], source=source)
    timings = {
        "retrieval_ms": retrieval_ms,
        "first_token_ms": first_token_ms,
        "total_ms": (time.perf_counter() - started) * 1000,
    }
    final = await db(services.answer_finish)(
        message_id=answer.pk,
        content=cached.content,
        status=Message.Status.COMPLETE,
        model=cached.model,
        timings=timings,
        citations=cited,
        learn=learn,
        cached_from=cached,
    )
    metrics.answer_log(
        message_id=message_id,
        status=final.status,
        timings=timings,
        search_timings=search_timings,
        from_cache=True,
    )
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "model": cached.model}
    yield DoneEvent(message=message_dict(final), usage=usage, timings=timings)


async def _extractive_answer(
    answer: Message,
    sources: list[dict],
    shown: list[dict],
    text: str,
    started: float,
    timings: dict,
) -> AsyncIterator[Event]:
    """``text``, the best passages quoted with their markers (``answering.extractive``),
    streamed and stored as a complete answer whose model is ``extractive``; ``timings`` gets
    the answer's totals.

    Never cached (only a model's answer is) and never learned from: it holds no words of the
    person's or the model's that memory extraction or a summary could use, and both would ask
    the model that just failed."""
    message_id = str(answer.pk)
    parser = CitationStreamParser({s["n"] for s in sources})
    state = _AnswerState()
    by_number = {s["n"]: s for s in shown}
    state.first_token_ms = (time.perf_counter() - started) * 1000
    # The whole text is known at once, so it is stored before anything is sent: a stop or a
    # consumer that goes away mid-way can no longer leave it half written.
    events = state.take(parser.feed(text), by_number, message_id)
    events += state.take(parser.finish(), by_number, message_id)
    timings.update(state.timings(started))
    final = await db(services.answer_finish)(
        message_id=answer.pk,
        content=state.text,
        status=Message.Status.COMPLETE,
        model=extractive.MODEL,
        timings=timings,
        citations=list(state.cited.values()),
        learn=False,
    )
    for event in events:
        yield event
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "model": extractive.MODEL}
    yield DoneEvent(message=message_dict(final), usage=usage, timings=timings)


class _AnswerState:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.cited: dict[int, dict] = {}
        self.completion: llm.Completion | None = None
        self.first_token_ms: float | None = None
        self.saved_at = time.monotonic()
        self.unsupported: list[dict] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def take(self, parsed, by_number, message_id) -> list[Event]:
        text, markers = parsed
        events: list[Event] = []
        if text:
            self.parts.append(text)
            events.append(DeltaEvent(message_id=message_id, text=text))
        for marker in markers:
            if marker.number not in self.cited and marker.number in by_number:
                self.cited[marker.number] = by_number[marker.number]
                events.append(
                    CitationEvent(
                        message_id=message_id, number=marker.number, source=by_number[marker.number]
                    )
                )
        return events

    def timings(self, started: float) -> dict:
        return {
            "first_token_ms": self.first_token_ms,
            "total_ms": (time.perf_counter() - started) * 1000,
        }


async def _finish(
    answer, state: _AnswerState, status, timings, config, learn: bool, error: str = ""
) -> Message:
    completion = state.completion
    return await saving.answer_finish(
        message_id=answer.pk,
        content=state.text,
        status=status,
        error=error,
        model=completion.model if completion else config.model,
        prompt_tokens=completion.prompt_tokens if completion else None,
        completion_tokens=completion.completion_tokens if completion else None,
        timings=timings,
        citations=list(state.cited.values()),
        unsupported=state.unsupported if status == Message.Status.COMPLETE else [],
        learn=learn,
    )


def _check_citations(text: str, passages: dict[int, str]) -> list[dict]:
    report = grounding.check_answer(text, passages, embeddings.get_embedder())
    return [v.as_dict() for v in report.unsupported]


async def _unsupported_sentences(state: _AnswerState, sources: list[dict]) -> list[dict]:
    """The cited sentences their passages do not support (see ``grounding``).

    Checked against each passage as the model read it (widened with its neighbours). Skipped
    when nothing is cited; a failing check is logged and never fails the answer.
    """
    if not state.cited:
        return []
    passages = {s["n"]: s.get("context") or s["text"] for s in sources}
    try:
        return await sync_to_async(_check_citations, thread_sensitive=False)(state.text, passages)
    except Exception:
        log.exception("citation check failed; the answer is stored unchecked")
        return []


def message_dict(message: Message) -> dict:
    return {
        "id": str(message.pk),
        "conversation_id": str(message.conversation_id),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "error": message.error,
        "model": message.model,
        "unsupported": message.unsupported,
        "from_cache": message.from_cache,
        "extractive": extractive.is_extractive(message.model),
    }
