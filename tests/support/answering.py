"""Driving the answering pipeline in-process against a scripted OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async

from assistant import llm, services
from assistant.answering.pipeline import answer_stream
from assistant.models import Message


def scripted_config(server, **overrides) -> llm.LLMConfig:
    """How to ask ``server`` (a ``ScriptedOpenAI``): no retries unless ``overrides`` say so."""
    values = {
        "base_url": server.base_url,
        "api_key": "test",
        "model": "scripted-model",
        "max_retries": 0,
    }
    return llm.LLMConfig(**{**values, **overrides})


def scripted_settings(server, **extra) -> dict:
    """The settings that make the app itself (the consumer, the pipeline's defaults) ask
    ``server``, with no retries; ``extra`` adds more (for ``override_settings``)."""
    return {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "test",
        "LLM_MODEL": "scripted-model",
        "LLM_MAX_RETRIES": 0,
        **extra,
    }


def scripted_env(server, **extra: str) -> dict[str, str]:
    """The same settings as environment variables, for a Daphne, worker or command started as
    a process; ``extra`` adds more."""
    return {name: str(value) for name, value in scripted_settings(server, **extra).items()}


def retry_once_config(server, **overrides) -> llm.LLMConfig:
    """A short read time-out and one quick retry, so a broken model fails a test in seconds."""
    return scripted_config(
        server, **{"read_timeout": 2, "max_retries": 1, "backoff_base": 0.01, **overrides}
    )


async def ask(user, text, conversation=None):
    """The question ``user`` asks (stored as the web would), ready for ``answer_stream``."""
    return await sync_to_async(services.question_create)(
        user=user, conversation=conversation, text=text
    )


async def collect(user, question, config, **kwargs):
    """Every event of the answer to ``question``."""
    return [
        event
        async for event in answer_stream(user=user, question=question, config=config, **kwargs)
    ]


async def answer_in_db(message_id, *statuses, timeout: float = 10) -> Message:
    """The stored answer once its status is one of ``statuses`` (or as it is at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await Message.objects.aget(pk=message_id)
        if message.status in statuses or time.monotonic() > deadline:
            return message
        await asyncio.sleep(0.05)
