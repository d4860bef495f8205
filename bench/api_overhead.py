"""The OpenAI-compatible API's time-to-first-token overhead over the answering pipeline itself.

    make bench-api        (or: .venv/bin/python -m assistant.embedded services -- python bench/api_overhead.py [--rounds 40])

One scripted OpenAI-compatible model on 127.0.0.1 (tests/support/openai_server.py) answers
every path the same way (first token at once, then 20 ms apart). Each round asks a new
question (the answer cache is off, so every answer reaches the model) four ways, one after
another, and records the time from sending to the first piece of answer text:

- model: the scripted model alone, through the openai client (the floor);
- pipeline: in this process, ``services.question_create`` + ``answering.pipeline.answer_stream``
  to its first delta (what every door runs; the reference);
- API in-process: ``POST /v1/chat/completions`` with ``stream: true`` through Django's async
  test client in this process (token check, middleware, parsing, storing, the runner's queue);
- API over HTTP: the official openai client (AsyncOpenAI, streaming) against a real Daphne
  (adds HTTP, SSE framing and the server process).

Prints p50 and p90 in ms and each API path's ratio to the pipeline (p50 / p50, p90 / p90).
One request at a time: this measures overhead, not load (bench/chat_load.py does load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.project.settings")
os.environ.setdefault("DEBUG", "1")
# Every round must reach the model; nobody is limited.
os.environ["ANSWER_CACHE_SECONDS"] = "0"
os.environ["CHAT_RATE_LIMIT_PER_MINUTE"] = "0"
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

import openai  # noqa: E402
from asgiref.sync import sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import AsyncClient, override_settings  # noqa: E402

from accounts.models import User  # noqa: E402
from assistant import services  # noqa: E402
from assistant.answering.pipeline import answer_stream  # noqa: E402
from knowledge.models import Collection  # noqa: E402
from knowledge.selectors import readable_collection_ids  # noqa: E402
from knowledge.tokens import token_create  # noqa: E402
from tests.support.answering import scripted_config, scripted_env, scripted_settings  # noqa: E402
from tests.support.knowledge import HANDBOOK, index_text  # noqa: E402
from tests.support.openai_server import Reply, ScriptedOpenAI  # noqa: E402
from tests.support.processes import ManagedProcess, free_port  # noqa: E402

TOKENS = ["Book ", "through ", "the ", "travel ", "desk ", "[1]."]
TOKEN_DELAY = 0.02


def prepare() -> tuple[User, str]:
    call_command("migrate", verbosity=0)
    admin, _ = User.objects.get_or_create(
        email="bench-admin@example.com", defaults={"is_staff": True, "is_superuser": True}
    )
    collection, created = Collection.objects.get_or_create(
        name="Bench API", defaults={"visibility": "everyone"}
    )
    if created:
        index_text(collection, "travel.md", HANDBOOK, user=admin)
    user, _ = User.objects.get_or_create(email="bench-api@example.com")
    _, plaintext = token_create(user=user, name="bench")
    return user, plaintext


def start_daphne(llm: ScriptedOpenAI) -> tuple[ManagedProcess, int]:
    port = free_port()
    env = dict(os.environ, **scripted_env(llm))
    argv = [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
    argv.append("assistant.project.asgi:application")
    log = BASE / "var" / "bench-api-daphne.log"
    proc = ManagedProcess("daphne", argv, env, log)
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.1)
    raise RuntimeError(proc.log_tail())


async def _openai_first_token(base_url: str, api_key: str, model: str, question: str) -> float:
    """Milliseconds to the first content delta of a streamed completion, through the openai
    client (the model directly, or the assistant's /v1/ over HTTP)."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], stream=True
    )
    first = None
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    await client.close()
    return first * 1000


async def via_model(llm: ScriptedOpenAI, question: str) -> float:
    return await _openai_first_token(llm.base_url, "bench", "scripted-model", question)


async def via_pipeline(llm: ScriptedOpenAI, user: User, question: str) -> float:
    ids = sorted(await sync_to_async(readable_collection_ids)(user))
    started = time.perf_counter()
    stored = await sync_to_async(services.question_create)(
        user=user, conversation=None, text=question, origin="api"
    )
    first = None
    stream = answer_stream(
        user=user, question=stored, collection_ids=ids, config=scripted_config(llm)
    )
    async for event in stream:
        if first is None and event.type == "delta":
            first = time.perf_counter() - started
    return first * 1000


async def via_api_in_process(token: str, question: str) -> float:
    client = AsyncClient()
    body = {
        "model": "assistant",
        "stream": True,
        "messages": [{"role": "user", "content": question}],
    }
    started = time.perf_counter()
    response = await client.post(
        "/v1/chat/completions",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    if not response.streaming:
        raise RuntimeError(f"/v1/ answered {response.status_code}: {response.content[:300]!r}")
    first = None
    async for part in response.streaming_content:
        if first is None and b'"content": "' in part and b'"content": ""' not in part:
            first = time.perf_counter() - started
    return first * 1000


async def via_api_http(port: int, token: str, question: str) -> float:
    return await _openai_first_token(f"http://127.0.0.1:{port}/v1", token, "assistant", question)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def measure(llm, port, user, token, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        "model": [],
        "pipeline": [],
        "API in-process": [],
        "API over HTTP": [],
    }
    for i in range(rounds + 3):
        question = f"How early do I book flight number {i} through the travel desk?"
        results = {
            "model": await via_model(llm, question),
            "pipeline": await via_pipeline(llm, user, question + " (pipeline)"),
            "API in-process": await via_api_in_process(token, question + " (in-process)"),
            "API over HTTP": await via_api_http(port, token, question + " (http)"),
        }
        if i >= 3:  # the first rounds warm up imports, the embedder and connections
            for name, value in results.items():
                times[name].append(value)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    user, token = prepare()
    with ScriptedOpenAI(default=Reply(tokens=TOKENS, delay=TOKEN_DELAY)) as llm:
        daphne, port = start_daphne(llm)
        try:
            # Django's test client calls itself "testserver".
            hosts = [*settings.ALLOWED_HOSTS, "testserver"]
            with override_settings(ALLOWED_HOSTS=hosts, **scripted_settings(llm)):
                times = asyncio.run(measure(llm, port, user, token, args.rounds))
        finally:
            daphne.stop()
    base50, base90 = pct(times["pipeline"], 50), pct(times["pipeline"], 90)
    print("path | TTFT p50 ms | TTFT p90 ms | ratio to pipeline p50 | ratio p90")
    for name, values in times.items():
        p50, p90 = pct(values, 50), pct(values, 90)
        print(f"{name} | {p50:.1f} | {p90:.1f} | {p50 / base50:.2f} | {p90 / base90:.2f}")
    print(
        f"\n({args.rounds} rounds, one request at a time; {len(TOKENS)} tokens, the first at once; "
        f"answer cache off; {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
