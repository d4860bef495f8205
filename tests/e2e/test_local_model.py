"""The local model really served by llama.cpp's server: it streams, survives a cancelled answer
and follows the memory extraction schema. Real processes, marked slow."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from assistant.devstack import localmodel
from assistant.devstack.localmodel import server_argv
from assistant.llm import ChatMessage, Completion, LLMConfig, TextDelta, aclose_clients, stream_chat

# The model this test run serves: the test launcher picks the small one.
SERVED_ALIAS = localmodel.choose().alias


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"llama server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"llama server not ready after {timeout}s")


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """The real local model behind llama.cpp's server; yields its base URL."""
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    port = _free_port()
    process = subprocess.Popen(
        server_argv("127.0.0.1", port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until_serving(f"http://127.0.0.1:{port}/v1/models", process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
async def test_the_local_model_streams_an_answer_end_to_end(llama_server):
    config = LLMConfig(base_url=llama_server, api_key="local", model=SERVED_ALIAS, max_tokens=32)
    messages = [ChatMessage("user", "What is the capital of France? Answer in one sentence.")]

    items = [item async for item in stream_chat(messages, config=config)]
    await aclose_clients()

    deltas = [item for item in items if isinstance(item, TextDelta)]
    completion = items[-1]
    assert deltas and "".join(d.text for d in deltas).strip()
    assert isinstance(completion, Completion)
    assert completion.finish_reason in {"stop", "length"}
    # llama-cpp-python ignores include_usage, so this may be our estimate: only sanity-check it.
    assert completion.completion_tokens and completion.completion_tokens > 0


@pytest.mark.slow
async def test_the_local_model_survives_a_cancelled_answer(llama_server):
    config = LLMConfig(base_url=llama_server, api_key="local", model=SERVED_ALIAS, max_tokens=200)
    messages = [ChatMessage("user", "Write a long story about a lighthouse keeper.")]

    stream = stream_chat(messages, config=config)
    assert isinstance(await anext(stream), TextDelta)
    # The server's own pace, measured now (the cores may be shared): seconds per token.
    paced = time.monotonic()
    for _ in range(5):
        assert isinstance(await anext(stream), TextDelta)
    per_token = (time.monotonic() - paced) / 5
    await stream.aclose()  # the server must drop that generation and take the next request

    started = time.monotonic()
    short = LLMConfig(base_url=llama_server, api_key="local", model=SERVED_ALIAS, max_tokens=8)
    items = [item async for item in stream_chat([ChatMessage("user", "Say hi.")], config=short)]
    await aclose_clients()

    assert isinstance(items[-1], Completion)
    # Had the server finished the story first, the short answer would have waited for its ~190
    # remaining tokens; it came in well under half that time, at the same pace.
    waited = time.monotonic() - started
    assert waited < 0.5 * 190 * per_token, (waited, per_token)


@pytest.mark.slow
async def test_the_local_model_follows_the_memory_extraction_schema(llama_server):
    """The schema must survive llama.cpp's JSON-schema-to-grammar conversion, and what the
    small model returns must parse into facts (or none) without an exception."""
    import json

    from assistant.llm import complete_json
    from assistant.memory import extraction as memory_extraction
    from assistant.models import MemoryItem

    config = LLMConfig(base_url=llama_server, api_key="local", model=SERVED_ALIAS, max_tokens=200)
    known = [MemoryItem(text="The user works in the Berlin office.")]
    # Only what the person wrote goes to extraction (never the answer: it quotes passages).
    messages = memory_extraction._extraction_messages(
        "I moved to the Munich office last month. Where is the nearest printer?", known
    )
    raw = await complete_json(messages, schema=memory_extraction.EXTRACTION_SCHEMA, config=config)
    await aclose_clients()
    data = json.loads(raw)
    assert isinstance(data["facts"], list)
    assert all(isinstance(fact, dict) and isinstance(fact["text"], str) for fact in data["facts"])
    facts = memory_extraction.parse_extraction(raw, known=len(known))
    assert all(fact.replaces in ((), (1,)) for fact in facts)
