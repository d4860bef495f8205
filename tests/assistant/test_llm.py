"""assistant.llm against a real (scripted) OpenAI-compatible server, through the real openai client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import pytest
import pytest_asyncio

from assistant.llm import (
    ChatMessage,
    Completion,
    LLMConfig,
    LLMRateLimited,
    LLMRequestRejected,
    LLMStreamBroken,
    LLMUnavailable,
    TextDelta,
    aclose_clients,
    complete_json,
    count_tokens,
    stream_chat,
)
from tests.support.answering import scripted_config
from tests.support.openai_server import RecordedRequest, Reply, ScriptedOpenAI

QUESTION = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "Say hello")]


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    # default=None: a request the test did not script gets a loud 500.
    with ScriptedOpenAI(default=None) as srv:
        yield srv


@pytest_asyncio.fixture(autouse=True, loop_scope="function")
async def _close_clients() -> AsyncIterator[None]:
    yield
    await aclose_clients()


def config_for(srv: ScriptedOpenAI, **overrides: object) -> LLMConfig:
    """Two quick retries, short time-outs and a model named "primary" (the fallback tests)."""
    values: dict[str, object] = {
        "api_key": "test-key",
        "model": "primary",
        "connect_timeout": 1,
        "read_timeout": 2,
        "max_retries": 2,
        "backoff_base": 0.01,
    }
    return scripted_config(srv, **{**values, **overrides})


async def collect(config: LLMConfig) -> tuple[list[str], Completion]:
    texts: list[str] = []
    completions: list[Completion] = []
    async for item in stream_chat(QUESTION, config=config):
        if isinstance(item, TextDelta):
            assert not completions, "text after the Completion"
            texts.append(item.text)
        else:
            completions.append(item)
    assert len(completions) == 1
    return texts, completions[0]


# -- the happy path ----------------------------------------------------------


async def test_it_streams_deltas_in_order_then_one_completion_with_usage(server):
    server.script(Reply(tokens=["Hel", "lo", " world"], delay=0.01))

    texts, completion = await collect(config_for(server))

    assert texts == ["Hel", "lo", " world"]
    assert completion == Completion(
        model="primary", prompt_tokens=4, completion_tokens=3, finish_reason="stop"
    )
    body = server.chat_requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Say hello"},
    ]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("primary", 0.2, 1024)


async def test_it_tolerates_a_server_that_ignores_include_usage(server):
    server.script(Reply(tokens=["Hi"], usage=False))

    texts, completion = await collect(config_for(server))

    assert texts == ["Hi"]
    assert completion.usage_estimated
    assert completion.completion_tokens == count_tokens("Hi")
    assert completion.prompt_tokens > count_tokens("Answer briefly. Say hello")
    assert completion.finish_reason == "stop"


async def test_it_reports_a_length_cut_as_the_finish_reason(server):
    server.script(Reply(tokens=["a", "b"], finish_reason="length"))

    _, completion = await collect(config_for(server))

    assert completion.finish_reason == "length"


async def test_an_empty_answer_is_a_completion_without_deltas(server):
    server.script(Reply(tokens=[]))

    texts, completion = await collect(config_for(server))

    assert texts == []
    assert completion.finish_reason == "stop"


async def test_slow_tokens_are_delivered_as_they_are_generated(server):
    server.script(Reply(tokens=["one", " two", " three", " four"], delay=0.2))
    started = time.monotonic()

    stream = stream_chat(QUESTION, config=config_for(server))
    first = await anext(stream)
    first_after = time.monotonic() - started
    sent_when_first_arrived = server.chat_requests[0].tokens_sent
    rest = [item async for item in stream]

    assert first == TextDelta("one")
    assert sent_when_first_arrived < 4, "the first delta waited for the whole answer"
    assert first_after < 0.5
    assert [d.text for d in rest if isinstance(d, TextDelta)] == [" two", " three", " four"]


# -- retries before the first token ------------------------------------------


async def test_it_waits_as_long_as_retry_after_asks_then_succeeds(server):
    server.script(Reply.rate_limited(retry_after=1), Reply(tokens=["ok"]))
    started = time.monotonic()

    texts, _ = await collect(config_for(server))

    elapsed = time.monotonic() - started
    assert texts == ["ok"]
    assert len(server.chat_requests) == 2
    # backoff_base is 0.01 s, so only Retry-After explains a wait of a second.
    assert 0.95 <= elapsed < 2.5


async def test_a_huge_retry_after_is_capped_by_max_backoff(server):
    server.script(Reply.rate_limited(retry_after=3600), Reply(tokens=["ok"]))
    started = time.monotonic()

    texts, _ = await collect(config_for(server, max_backoff=0.2))

    assert texts == ["ok"]
    assert time.monotonic() - started < 1.5


async def test_persistent_rate_limiting_raises_llm_rate_limited(server):
    server.script([Reply.rate_limited(retry_after=0)] * 3)

    with pytest.raises(LLMRateLimited) as caught:
        await collect(config_for(server, max_retries=2))

    assert len(server.chat_requests) == 3
    assert "busy" in caught.value.user_message


async def test_repeated_server_errors_give_up_with_llm_unavailable(server):
    server.script([Reply.error(500)] * 3)

    with pytest.raises(LLMUnavailable) as caught:
        await collect(config_for(server, max_retries=2))

    assert len(server.chat_requests) == 3, "max_retries=2 means three attempts in all"
    assert caught.value.user_message.startswith("The language model could not be reached")


async def test_a_bad_request_is_not_retried(server):
    server.script(Reply.error(400, "context too long"))

    with pytest.raises(LLMRequestRejected):
        await collect(config_for(server))

    assert len(server.chat_requests) == 1


async def test_a_connection_drop_before_the_first_token_is_retried(server):
    server.script(Reply.dropped(["never"], after=0), Reply(tokens=["ok"]))

    texts, _ = await collect(config_for(server))

    assert texts == ["ok"]
    assert len(server.chat_requests) == 2


async def test_silence_after_the_headers_counts_as_before_the_first_token(server):
    server.script(Reply(tokens=["late"], first_delay=2), Reply(tokens=["ok"]))

    texts, _ = await collect(config_for(server, read_timeout=0.3))

    assert texts == ["ok"]


async def test_a_hung_server_times_out_into_llm_unavailable_in_bounded_time(server):
    server.script([Reply.hanging()] * 2)
    started = time.monotonic()

    with pytest.raises(LLMUnavailable):
        await collect(config_for(server, read_timeout=0.3, max_retries=1))

    # two attempts of 0.3 s plus a tiny backoff, far below any default timeout
    assert time.monotonic() - started < 2
    assert all(r.disconnected.wait(2) for r in server.chat_requests)


async def test_the_fallback_model_answers_when_the_primary_gives_up(server):
    server.script([Reply.error(503)] * 3, Reply(tokens=["from", " backup"]))

    texts, completion = await collect(config_for(server, fallback_model="backup"))

    assert texts == ["from", " backup"]
    assert [r.model for r in server.chat_requests] == ["primary"] * 3 + ["backup"]
    assert completion.model == "backup"


async def test_the_fallback_gets_one_round_only(server):
    server.script([Reply.error(500)] * 6)

    with pytest.raises(LLMUnavailable):
        await collect(config_for(server, fallback_model="backup"))

    assert [r.model for r in server.chat_requests] == ["primary"] * 3 + ["backup"] * 3


async def test_a_rejected_request_does_not_fall_back(server):
    server.script(Reply.error(401, "bad key"))

    with pytest.raises(LLMRequestRejected):
        await collect(config_for(server, fallback_model="backup"))

    assert [r.model for r in server.chat_requests] == ["primary"]


# -- failures after the first token ------------------------------------------


async def test_a_drop_mid_stream_raises_stream_broken_after_the_first_deltas(server):
    server.script(Reply.dropped(["a", "b", "c", "d"], after=2))
    received: list[str] = []

    with pytest.raises(LLMStreamBroken) as caught:
        async for item in stream_chat(QUESTION, config=config_for(server)):
            if isinstance(item, TextDelta):
                received.append(item.text)

    assert received == ["a", "b"]
    assert len(server.chat_requests) == 1, "no retry once text was delivered"
    assert "interrupted" in caught.value.user_message


async def test_a_stall_mid_stream_raises_stream_broken(server):
    server.script(Reply(tokens=["a", "b"], delay=2))
    received: list[str] = []

    with pytest.raises(LLMStreamBroken):
        async for item in stream_chat(QUESTION, config=config_for(server, read_timeout=0.3)):
            if isinstance(item, TextDelta):
                received.append(item.text)

    assert received == ["a"]


# -- cancellation ------------------------------------------------------------


async def test_closing_the_stream_early_closes_the_connection(server):
    server.script(Reply(tokens=["t"] * 200, delay=0.02))

    stream = stream_chat(QUESTION, config=config_for(server))
    assert await anext(stream) == TextDelta("t")
    assert await anext(stream) == TextDelta("t")
    await stream.aclose()

    request = server.chat_requests[0]
    assert await asyncio.to_thread(request.disconnected.wait, 2)
    assert request.tokens_sent < 200
    assert not request.finished


async def test_cancelling_the_consuming_task_closes_the_connection(server):
    server.script(Reply(tokens=["t"] * 200, delay=0.02))
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for _ in stream_chat(QUESTION, config=config_for(server)):
            first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    request = server.chat_requests[0]
    assert await asyncio.to_thread(request.disconnected.wait, 2)
    assert not request.finished


# -- complete_json -----------------------------------------------------------


async def test_complete_json_returns_the_whole_text_and_asks_for_json(server):
    server.script(Reply(tokens=['{"title":', ' "Hi"}']))

    text = await complete_json(QUESTION, config=config_for(server))

    assert json.loads(text) == {"title": "Hi"}
    body = server.chat_requests[0].body
    assert body["response_format"] == {"type": "json_object"}
    assert "stream" not in body or body["stream"] is False


async def test_complete_json_passes_a_schema_and_retries_like_streaming(server):
    schema = {"title": "Memory items", "type": "object", "properties": {"items": {"type": "array"}}}
    server.script(Reply.error(502), Reply(tokens=['{"items": []}']))

    text = await complete_json(QUESTION, schema=schema, config=config_for(server))

    assert json.loads(text) == {"items": []}
    assert len(server.chat_requests) == 2
    response_format = server.chat_requests[1].body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"] == {"name": "Memory_items", "schema": schema}


async def test_complete_json_speaks_llama_cpp_schema_style_when_json_schema_is_refused(server):
    def like_llama_cpp(request: RecordedRequest) -> Reply:
        if request.body["response_format"]["type"] == "json_schema":
            return Reply.error(500, "validation error: body.response_format.type: 'json_schema'")
        return Reply(tokens=['{"ok": true}'])

    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    config = config_for(server)
    server.script(like_llama_cpp, like_llama_cpp, like_llama_cpp)

    first = await complete_json(QUESTION, schema=schema, config=config)
    second = await complete_json(QUESTION, schema=schema, config=config)

    assert json.loads(first) == json.loads(second) == {"ok": True}
    formats = [r.body["response_format"] for r in server.chat_requests]
    assert [f["type"] for f in formats] == ["json_schema", "json_object", "json_object"]
    assert formats[1]["schema"] == schema, "the schema still constrains the answer"


async def test_complete_json_gives_up_with_llm_unavailable(server):
    server.script([Reply.hanging()] * 2)

    with pytest.raises(LLMUnavailable):
        await complete_json(QUESTION, config=config_for(server, read_timeout=0.3, max_retries=1))


# -- configuration and helpers -----------------------------------------------


def test_config_is_read_from_settings_when_asked(monkeypatch):
    # A stand-in settings object: from_settings must read at call time, not import time.
    fake = SimpleNamespace(
        OPENAI_BASE_URL="http://llm.internal/v1",
        OPENAI_API_KEY="sk-test",
        LLM_MODEL="big",
        LLM_FALLBACK_MODEL="",
        LLM_TIMEOUT="30",
    )
    monkeypatch.setattr("django.conf.settings", fake)

    config = LLMConfig.from_settings()

    assert (config.base_url, config.api_key, config.model) == (
        "http://llm.internal/v1",
        "sk-test",
        "big",
    )
    assert config.fallback_model is None, "an empty setting means no fallback"
    assert config.read_timeout == 30.0
    assert (config.max_retries, config.temperature) == (3, 0.2), "unset settings keep defaults"


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("", 0, 0),
        ("Hello world", 2, 3),
        ("The quick brown fox jumps over the lazy dog. " * 10, 95, 125),
        ("internationalization", 3, 6),
        ("def f(x):\n    return x + 1\n", 10, 18),
    ],
)
def test_count_tokens_is_a_reasonable_estimate(text, low, high):
    assert low <= count_tokens(text) <= high
