"""Chat under load: N concurrent WebSocket clients against one Daphne process.

    .venv/bin/python -m assistant.embedded services -- python bench/chat_load.py [--levels 1,5,10,20,40]

An OpenAI-compatible server on 127.0.0.1 streams TOKENS tokens at a fixed rate. For each
concurrency level N it measures, in the same run:

- time to first token through the whole app (WebSocket ask -> first delta frame) against
  calling that server directly with the openai client at the same concurrency (ms and ratio,
  p50 and p99);
- delta delivery latency: when the last delta arrives compared with when the server's fixed
  pacing says the last token was sent (the tail the app adds);
- frames: how many delta frames per answer (batching), and messages lost (an answer whose
  text differs from what the server sent, or that never finished): must be 0;
- the largest N whose p99 time-to-first-token overhead stays under 250 ms.
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

import django  # noqa: E402

django.setup()

import openai  # noqa: E402
import websockets  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.models import User  # noqa: E402
from knowledge.models import Collection  # noqa: E402
from tests.support.knowledge import index_text  # noqa: E402
from tests.support.openai_server import Reply, ScriptedOpenAI  # noqa: E402
from tests.support.processes import ManagedProcess, free_port  # noqa: E402

TOKENS = 40
TOKEN_DELAY = 0.02  # 50 tokens/s, like a fast hosted model
WORDS = [f"w{i} " for i in range(TOKENS - 1)] + ["[1]."]
EXPECTED = "".join(WORDS)


def pct(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[index]


def prepare(n_users: int) -> list[str]:
    call_command("migrate", verbosity=0)
    admin, _ = User.objects.get_or_create(
        email="bench-admin@example.com", defaults={"is_staff": True, "is_superuser": True}
    )
    collection, created = Collection.objects.get_or_create(
        name="Bench chat", defaults={"visibility": "everyone"}
    )
    if created:
        index_text(
            collection,
            "travel.md",
            "# Travel\n\nBook flights through the travel desk two weeks ahead.",
            user=admin,
        )
    cookies = []
    for i in range(n_users):
        user, _ = User.objects.get_or_create(email=f"bench-user-{i}@example.com")
        client = Client()
        client.force_login(user)
        cookies.append(
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
    return cookies


def start_daphne(llm_url: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    env = dict(
        os.environ,
        OPENAI_BASE_URL=llm_url,
        OPENAI_API_KEY="bench",
        LLM_MODEL="scripted-model",
        CHAT_RATE_LIMIT_PER_MINUTE="0",
        LOG_LEVEL="WARNING",
    )
    bin_dir = Path(sys.executable).parent
    proc = ManagedProcess(
        "daphne",
        [
            str(bin_dir / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "assistant.project.asgi:application",
        ],
        env,
        BASE / "var" / "bench-daphne.log",
    )
    deadline = time.monotonic() + 30
    import socket

    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.1)
    raise RuntimeError(proc.log_tail())


async def direct_ttft(llm_url: str, n: int) -> list[float]:
    client = openai.AsyncOpenAI(base_url=llm_url, api_key="bench", max_retries=0)

    async def one():
        started = time.perf_counter()
        stream = await client.chat.completions.create(
            model="scripted-model", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        first = None
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - started
        return first * 1000

    results = await asyncio.gather(*[one() for _ in range(n)])
    await client.close()
    return results


async def ws_client(port: int, cookie: str, question: str) -> dict:
    url = f"ws://127.0.0.1:{port}/ws/events/"
    async with websockets.connect(
        url,
        additional_headers={"Cookie": cookie},
        origin=f"http://127.0.0.1:{port}",
        open_timeout=30,
        max_size=2**22,
    ) as ws:
        await ws.recv()  # hello
        sent = time.perf_counter()
        await ws.send(
            json.dumps(
                {"type": "ask", "request_id": "b", "conversation_id": None, "text": question}
            )
        )
        first = last = None
        text, frames, done = "", 0, False
        while not done:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
            now = time.perf_counter()
            if frame["type"] == "delta":
                frames += 1
                text += frame["text"]
                first = first or now
                last = now
            elif frame["type"] in ("done", "error"):
                done = frame["type"] == "done"
                break
        return {
            "sent": sent,
            "first": first,
            "last": last,
            "text": text,
            "frames": frames,
            "done": done,
        }


async def level(port: int, llm_url: str, cookies: list[str], n: int) -> dict:
    direct = await direct_ttft(llm_url, n)
    runs = await asyncio.gather(
        *[ws_client(port, cookies[i], "How do I book a flight?") for i in range(n)],
        return_exceptions=True,
    )
    ok = [r for r in runs if isinstance(r, dict) and r["first"] is not None]
    lost = sum(1 for r in runs if not isinstance(r, dict) or not r["done"] or r["text"] != EXPECTED)
    ttft = [(r["first"] - r["sent"]) * 1000 for r in ok]
    stream_time = TOKENS * TOKEN_DELAY * 1000
    tail = [
        max(0.0, (r["last"] - r["first"]) * 1000 - (stream_time - TOKEN_DELAY * 1000)) for r in ok
    ]
    return {
        "n": n,
        "ttft_p50": pct(ttft, 50),
        "ttft_p99": pct(ttft, 99),
        "direct_p50": pct(direct, 50),
        "direct_p99": pct(direct, 99),
        "overhead_p50": pct(ttft, 50) - pct(direct, 50),
        "overhead_p99": pct(ttft, 99) - pct(direct, 99),
        "tail_p50": pct(tail, 50),
        "tail_p99": pct(tail, 99),
        "frames_per_answer": statistics.mean(r["frames"] for r in ok) if ok else 0,
        "lost": lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", default="1,5,10,20,40,80")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    cookies = prepare(max(levels))
    with ScriptedOpenAI(default=Reply(tokens=WORDS, delay=TOKEN_DELAY)) as llm_server:
        daphne, port = start_daphne(llm_server.base_url)
        try:
            asyncio.run(
                level(port, llm_server.base_url, cookies, 1)
            )  # warm-up: imports, model load
            rows = [asyncio.run(level(port, llm_server.base_url, cookies, n)) for n in levels]
        finally:
            daphne.stop()
    header = (
        "N",
        "TTFT p50",
        "direct p50",
        "ratio p50",
        "overhead p99 ms",
        "ratio p99",
        "tail p99 ms",
        "frames/answer",
        "lost",
    )
    print(" | ".join(header))
    for r in rows:
        print(
            " | ".join(
                [
                    str(r["n"]),
                    f"{r['ttft_p50']:.0f}",
                    f"{r['direct_p50']:.0f}",
                    f"{r['ttft_p50'] / r['direct_p50']:.2f}",
                    f"{r['overhead_p99']:.0f}",
                    f"{r['ttft_p99'] / r['direct_p99']:.2f}",
                    f"{r['tail_p99']:.0f}",
                    f"{r['frames_per_answer']:.1f}",
                    str(r["lost"]),
                ]
            )
        )
    held = [r["n"] for r in rows if r["overhead_p99"] < 250 and r["lost"] == 0]
    print(
        f"\nlargest N with p99 time-to-first-token overhead < 250 ms and nothing lost: {max(held) if held else 'none'}"
    )
    print(
        f"({TOKENS} tokens at {1 / TOKEN_DELAY:.0f} tokens/s per answer; one Daphne process; {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
