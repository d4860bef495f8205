"""Chat under load: questions arriving at a steady rate, answers streaming for 20 s, against one
web process and against two behind nginx (the launcher's own topology, `run --web N`).

    make bench-chat                                       # both topologies, about 15 minutes
    VAR_DIR=var/bench-chat EMBEDDED_LLM=0 EMBEDDED_REDIS_PORT=6398 \\
        .venv/bin/python -m assistant.embedded services -- python bench/chat_load.py --quick

A scripted OpenAI-compatible server (its own process, so its threads do not share this one's
interpreter) streams TOKENS tokens at TOKENS_PER_SECOND; every token carries the time it was
written. Questions arrive one every 1/rate seconds, each from a tab that connects, asks and
reads until `done`; so the number of answers streaming at once settles at rate x answer time.
For each such concurrency C, ramped until a limit is crossed, and each topology:

- time to first token through the whole app (ask sent -> first delta frame) against calling the
  model server directly with the openai client at the same rate (p50, p99, overhead, ratio);
- token delay: per token, when it reached the client minus when the model server wrote it,
  through the app and directly (p50, p99, ratio);
- lost: answers that never finished, or whose tokens did not all arrive exactly once, in order;
- CPU seconds per answer of the web processes (Daphne), of nginx, and where the rest went (the
  model server, these clients, PostgreSQL and Redis, the rest of the machine);
- memory per open socket: the web processes' RSS with K idle signed-in sockets, minus without,
  over K (nginx's too).

The headline per topology: the largest C with p99 time-to-first-token overhead < 250 ms, p99
token delay < 250 ms and nothing lost. JSON in $VAR_DIR/results/chat_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    machine_info,
    machine_line,
    markdown_table,
    percentile,
    ratio,
    require_services,
    results_dir,
    setup_django,
    var_dir,
    write_json,
)

THRESHOLD_MS = 250
# A token is complete at its sixth decimal, not at the space after it: the citation parser holds
# trailing spaces back until the next character (they may precede a marker), which would add
# one inter-token gap to every delay measured.
TOKEN = re.compile(r"w(\d+)@(\d+\.\d{6})")
QUESTION = "How do I book a flight?"
FULL = {
    "tokens": 400,
    "tokens_per_second": 20,  # 20 s answers, like a hosted model writing a long answer
    # Ramped until a limit is crossed: a level costs 20 s of ramp, the plateau and 20 s of drain.
    "levels": "10,20,30,40,60,80,120",
    "plateau": 8,  # seconds at full concurrency per level; the timings come from them
    "idle_sockets": 200,
    "users": 40,
}
QUICK = {
    "tokens": 60,
    "tokens_per_second": 20,
    "levels": "2,4",
    "plateau": 3,
    "idle_sockets": 20,
    "users": 4,
}


# --- the model server, in its own process ----------------------------------------------------


def serve_model(tokens: int, tokens_per_second: float) -> None:
    """``chat_load.py serve-model``: prints its URL, serves until stdin closes."""
    from tests.support.openai_server import Reply, ScriptedOpenAI

    words = [f"w{i}@" for i in range(tokens - 1)]
    reply = Reply(tokens=[*words, "[1]."], delay=1 / tokens_per_second, timestamps=True)
    with ScriptedOpenAI(default=reply) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


class ModelServer:
    def __init__(self, tokens: int, tokens_per_second: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve-model", str(tokens), str(tokens_per_second)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            raise RuntimeError("the scripted model server did not start")

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


# --- the app's side: users, the topology ----------------------------------------------------


def prepare(n_users: int) -> list[str]:
    from django.conf import settings
    from django.test import Client

    from accounts.models import User
    from bench.common import bench_superuser
    from knowledge.models import Collection
    from tests.support.knowledge import index_text

    admin = bench_superuser()
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


class Topology:
    """`run --web N`'s web side, started by the launcher's own code: one Daphne on PORT, or N
    Daphnes behind nginx. Logs in $VAR_DIR/results/."""

    def __init__(self, web: int, model_url: str) -> None:
        from assistant.devstack import launcher, proxy
        from assistant.devstack.processes import Children, consecutive_free_ports

        self.web = web
        self.children = Children()
        self.port = consecutive_free_ports(len(launcher.web_ports(0, web)))
        nginx = proxy.find_nginx(dict(os.environ)) if web > 1 else None
        if web > 1 and nginx is None:
            raise SystemExit(proxy.missing_nginx_message(web, dict(os.environ)))
        env = dict(
            os.environ,
            OPENAI_BASE_URL=model_url,
            OPENAI_API_KEY="bench",
            LLM_MODEL="scripted-model",
            LLM_MAX_TOKENS="2000",
            CHAT_RATE_LIMIT_PER_MINUTE="0",
            # Every bench question is the same: without this, all but the first are cache hits.
            ANSWER_CACHE_SECONDS="0",
            MEMORY_AUTO_LEARN="0",
            LOG_LEVEL="WARNING",
        )
        folder = var_dir() / f"topology-web{web}"
        log_dir = results_dir() / f"logs-web{web}"
        log_dir.mkdir(parents=True, exist_ok=True)
        launcher.start_web(
            folder, env, self.children, port=self.port, count=web, nginx=nginx, log_dir=log_dir
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def pids(self, prefix: str) -> list[int]:
        import psutil

        found = []
        for name, proc in self.children.procs:
            if name.startswith(prefix):
                found.append(proc.pid)
                found += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        return found

    def stop(self) -> None:
        self.children.stop_all()


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU time (user + system) of each process still running."""
    import psutil

    found = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        found[pid] = times.user + times.system
    return found


def cpu_used(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds since ``before`` of the processes alive both times (a PostgreSQL backend that
    exited in between takes its time with it)."""
    after = cpu_seconds(pids)
    return sum(after[pid] - before[pid] for pid in after.keys() & before.keys())


def service_pids() -> list[int]:
    """The embedded PostgreSQL (its server and backends) and Redis of this run, found by their
    data folder and port; their CPU is part of what an answer costs."""
    from urllib.parse import urlsplit

    import psutil

    redis_port = str(urlsplit(os.environ.get("REDIS_URL", "")).port or "")
    pgdata = str(var_dir() / "pgdata")
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and pgdata in cmdline:
            found.append(proc.pid)
            found += [child.pid for child in proc.children(recursive=True)]
        elif "redis-server" in cmdline and redis_port and f" {redis_port}" in cmdline:
            found.append(proc.pid)
    return found


def rss_bytes(pids: list[int]) -> int:
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return total


# --- one question ------------------------------------------------------------------------------


class Answer:
    """What one client saw of one answer; tokens are parsed as their text accumulates (a frame
    may end inside a token)."""

    def __init__(self) -> None:
        self.arrived = time.time()  # when the question arrived (before the tab connected)
        self.sent = self.first = None
        self.text = ""
        self.parsed_to = 0
        self.indexes: list[int] = []
        self.tokens: list[tuple[float, float]] = []  # (written by the server at, delay in ms)
        self.done = False
        self.error: str | None = None

    def feed(self, text: str) -> None:
        now = time.time()
        self.text += text
        for match in TOKEN.finditer(self.text, self.parsed_to):
            self.indexes.append(int(match[1]))
            written = float(match[2])
            self.tokens.append((written, (now - written) * 1000))
            self.parsed_to = match.end()

    def describe(self, tokens: int) -> dict:
        """What went wrong with a lost answer, for the results file."""
        missing = sorted(set(range(tokens - 1)) - set(self.indexes))
        return {
            "done": self.done,
            "error": self.error,
            "tokens_received": len(self.indexes),
            "missing": missing[:5],
            "duplicates_or_reordered": self.indexes != sorted(set(self.indexes)),
            "out_of_order_at": next(
                (
                    self.indexes[max(0, i - 2) : i + 3]
                    for i in range(1, len(self.indexes))
                    if self.indexes[i] != self.indexes[i - 1] + 1
                ),
                None,
            ),
            "text_tail": self.text[-60:],
        }

    def lost(self, tokens: int) -> bool:
        # The last token is the citation marker "[1]." (with its timestamp after it).
        complete = self.indexes == list(range(tokens - 1)) and "[1]." in self.text[self.parsed_to :]
        return not (self.done and complete)


async def ask_through_app(base: str, cookie: str) -> Answer:
    import websockets

    answer = Answer()
    try:
        async with websockets.connect(
            base.replace("http://", "ws://") + "/ws/events/",
            additional_headers={"Cookie": cookie},
            origin=base,
            open_timeout=60,
            max_size=2**22,
        ) as ws:
            await asyncio.wait_for(ws.recv(), 60)  # hello: the tab is open
            answer.sent = time.time()
            frame = {"type": "ask", "request_id": "b", "conversation_id": None, "text": QUESTION}
            await ws.send(json.dumps(frame))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if frame["type"] == "delta":
                    answer.first = answer.first or time.time()
                    answer.feed(frame["text"])
                elif frame["type"] in ("done", "error"):
                    answer.done = frame["type"] == "done"
                    answer.error = frame.get("message") if not answer.done else None
                    return answer
    except Exception as exc:  # noqa: BLE001 - a failed answer is a result, not a crash
        answer.error = repr(exc)
        return answer


async def ask_directly(client, _cookie: str) -> Answer:
    answer = Answer()
    try:
        answer.sent = time.time()
        stream = await client.chat.completions.create(
            model="scripted-model", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                answer.first = answer.first or time.time()
                answer.feed(chunk.choices[0].delta.content)
        answer.done = True
    except Exception as exc:  # noqa: BLE001
        answer.error = repr(exc)
    return answer


async def arrivals(ask, target, cookies: list[str], rate: float, count: int) -> list[Answer]:
    """``count`` questions, one every 1/``rate`` s (a fixed interval: a steady stream, where a
    burst would measure the queue instead)."""
    start = time.monotonic()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(ask(target, cookies[i % len(cookies)])))
    return await asyncio.gather(*tasks)


def summarise(answers: list[Answer], tokens: int, answer_seconds: float) -> dict:
    """Timings from the steady part of the level only: from one answer's length after the first
    arrival (the streams have ramped up to the level's concurrency) to the last arrival (they
    start to drain). Lost answers are counted over the whole level."""
    start = min(a.arrived for a in answers)
    lo, hi = start + answer_seconds, max(a.arrived for a in answers)
    if hi <= lo:  # too short a level to have a steady part: all of it
        lo, hi = start, float("inf")
    ok = [a for a in answers if a.first is not None]
    ttft = [(a.first - a.sent) * 1000 for a in ok if lo <= a.arrived <= hi]
    delays = [d for a in ok for written, d in a.tokens if lo <= written <= hi]
    errors = sorted({a.error for a in answers if a.error})[:3]
    return {
        "answers": len(answers),
        "steady_questions": len(ttft),
        "steady_tokens": len(delays),
        "ttft_p50_ms": round(percentile(ttft, 50), 1),
        "ttft_p99_ms": round(percentile(ttft, 99), 1),
        "token_delay_p50_ms": round(percentile(delays, 50), 1),
        "token_delay_p99_ms": round(percentile(delays, 99), 1),
        "lost": sum(1 for a in answers if a.lost(tokens)),
        "lost_examples": [a.describe(tokens) for a in answers if a.lost(tokens)][:3],
        "errors": errors,
    }


# --- the run ---------------------------------------------------------------------------------


def level_plan(concurrency: int, answer_seconds: float, plateau: float) -> tuple[float, int]:
    """The arrival rate that keeps ``concurrency`` answers streaming, and how many questions
    to send so that it holds for ``plateau`` seconds."""
    rate = concurrency / answer_seconds
    return rate, max(concurrency, round(rate * (answer_seconds + plateau)))


def run_level(ask, target, cookies, *, rate: float, count: int, cfg: dict) -> dict:
    answers = asyncio.run(arrivals(ask, target, cookies, rate, count))
    return summarise(answers, cfg["tokens"], cfg["tokens"] / cfg["tokens_per_second"])


def direct_level(model_url: str, cookies, *, rate: float, count: int, cfg: dict) -> dict:
    import httpx
    import openai

    async def go():
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
        client = openai.AsyncOpenAI(
            base_url=model_url,
            api_key="bench",
            max_retries=0,
            http_client=httpx.AsyncClient(limits=limits, timeout=120),
        )
        try:
            return await arrivals(ask_directly, client, cookies, rate, count)
        finally:
            await client.close()

    return summarise(asyncio.run(go()), cfg["tokens"], cfg["tokens"] / cfg["tokens_per_second"])


async def idle_sockets(base: str, cookies: list[str], count: int):
    import websockets

    opened = []
    for i in range(count):
        ws = await websockets.connect(
            base.replace("http://", "ws://") + "/ws/events/",
            additional_headers={"Cookie": cookies[i % len(cookies)]},
            origin=base,
            open_timeout=60,
        )
        await asyncio.wait_for(ws.recv(), 60)  # hello: authenticated and subscribed
        opened.append(ws)
    return opened


def memory_per_socket(topology: Topology, cookies: list[str], count: int) -> dict:
    async def measure():
        web, front = topology.pids("web"), topology.pids("proxy")
        await asyncio.sleep(1)
        before = rss_bytes(web), rss_bytes(front)
        opened = await idle_sockets(topology.base, cookies, count)
        await asyncio.sleep(1)
        after = rss_bytes(web), rss_bytes(front)
        for ws in opened:
            await ws.close()
        return before, after

    (web_before, front_before), (web_after, front_after) = asyncio.run(measure())
    return {
        "sockets": count,
        "web_rss_before_mib": round(web_before / 2**20, 1),
        "web_kib_per_socket": round((web_after - web_before) / count / 1024, 1),
        "nginx_kib_per_socket": round((front_after - front_before) / count / 1024, 1)
        if topology.web > 1
        else None,
    }


def passes(row: dict) -> bool:
    return (
        row["ttft_overhead_p99_ms"] < THRESHOLD_MS
        and row["token_delay_p99_ms"] < THRESHOLD_MS
        and row["lost"] == 0
    )


def bench_topology(web, model, cookies, levels, cfg, direct_rows) -> dict:
    import psutil

    answer_seconds = cfg["tokens"] / cfg["tokens_per_second"]
    topology = Topology(web, model.base_url)
    rows = []
    try:
        memory = memory_per_socket(topology, cookies, cfg["idle_sockets"])
        # Warm-up: imports, the embedding model, database connections in every process.
        run_level(ask_through_app, topology.base, cookies, rate=2, count=2 * web, cfg=cfg)
        for concurrency in levels:
            rate, count = level_plan(concurrency, answer_seconds, cfg["plateau"])
            if concurrency not in direct_rows:
                direct_rows[concurrency] = direct_level(
                    model.base_url, cookies, rate=rate, count=count, cfg=cfg
                )
            direct = direct_rows[concurrency]
            web_pids, front_pids = topology.pids("web"), topology.pids("proxy")
            services = service_pids()
            groups = [web_pids, front_pids, [model.proc.pid], [os.getpid()], services]
            cpu_before = [cpu_seconds(pids) for pids in groups]
            machine_before = psutil.cpu_times()
            app = run_level(
                ask_through_app, topology.base, cookies, rate=rate, count=count, cfg=cfg
            )
            machine = psutil.cpu_times()
            used = [cpu_used(before, pids) for before, pids in zip(cpu_before, groups, strict=True)]
            busy = (machine.user + machine.system) - (machine_before.user + machine_before.system)
            row = {
                "concurrency": concurrency,
                "rate_per_s": round(rate, 2),
                **app,
                "direct_ttft_p99_ms": direct["ttft_p99_ms"],
                "direct_token_delay_p99_ms": direct["token_delay_p99_ms"],
                "ttft_overhead_p99_ms": round(app["ttft_p99_ms"] - direct["ttft_p99_ms"], 1),
                "ttft_ratio_p99": ratio(app["ttft_p99_ms"], direct["ttft_p99_ms"]),
                "token_delay_ratio_p99": ratio(
                    app["token_delay_p99_ms"], direct["token_delay_p99_ms"]
                ),
                "cpu_s_per_answer": {
                    "web": round(used[0] / count, 3),
                    "nginx": round(used[1] / count, 3),
                    "model_server": round(used[2] / count, 3),
                    "bench_clients": round(used[3] / count, 3),
                    "postgres_redis": round(used[4] / count, 3),
                    "rest_of_machine": round((busy - sum(used)) / count, 3),
                },
            }
            rows.append(row)
            print_row(web, row)
            if not passes(row):
                break  # the limit is crossed: higher levels only take time
    finally:
        topology.stop()
    held = [r["concurrency"] for r in rows if passes(r)]
    return {"web": web, "largest_concurrency": max(held) if held else 0, "levels": rows, **memory}


def print_row(web: int, row: dict) -> None:
    print(
        f"web={web} C={row['concurrency']:>4} rate={row['rate_per_s']:>5}/s "
        f"TTFT p99 {row['ttft_p99_ms']:>7} ms (direct {row['direct_ttft_p99_ms']}) "
        f"token delay p99 {row['token_delay_p99_ms']:>7} ms (direct "
        f"{row['direct_token_delay_p99_ms']}) lost {row['lost']} "
        f"web CPU/answer {row['cpu_s_per_answer']['web']} s",
        flush=True,
    )


def report(results: list[dict], cfg: dict) -> None:
    headers = [
        "web",
        "C",
        "TTFT p99 (ms)",
        "direct p99",
        "overhead p99",
        "token delay p99 (ms)",
        "direct p99",
        "lost",
        "CPU s/answer: web",
        "nginx",
        "model server",
        "bench clients",
        "PostgreSQL+Redis",
        "rest of machine",
    ]
    rows = [
        [
            r["web"],
            row["concurrency"],
            row["ttft_p99_ms"],
            row["direct_ttft_p99_ms"],
            row["ttft_overhead_p99_ms"],
            row["token_delay_p99_ms"],
            row["direct_token_delay_p99_ms"],
            row["lost"],
            *row["cpu_s_per_answer"].values(),
        ]
        for r in results
        for row in r["levels"]
    ]
    print()
    print(markdown_table(headers, rows))
    print()
    for r in results:
        print(
            f"--web {r['web']}: largest C with p99 TTFT overhead and p99 token delay "
            f"< {THRESHOLD_MS} ms and nothing lost: {r['largest_concurrency']}; "
            f"{r['web_kib_per_socket']} KiB per idle socket in the web processes"
            + (f", {r['nginx_kib_per_socket']} KiB in nginx" if r["nginx_kib_per_socket"] else "")
        )
    if len(results) == 2 and results[0]["largest_concurrency"]:
        gain = ratio(results[1]["largest_concurrency"], results[0]["largest_concurrency"])
        print(f"two web processes / one: {gain}x")
    print(
        f"({cfg['tokens']} tokens at {cfg['tokens_per_second']} tokens/s per answer; "
        f"{os.cpu_count()} cores shared by the clients, the model server and the app)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke check at small scale")
    parser.add_argument("--web", default="1,2", help="topologies to measure (default 1,2)")
    parser.add_argument("--levels", help="concurrencies to ramp through")
    parser.add_argument("--tokens", type=int)
    parser.add_argument("--tokens-per-second", type=float)
    parser.add_argument("--plateau", type=float, help="seconds at full concurrency per level")
    parser.add_argument("--idle-sockets", type=int)
    args = parser.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("levels", "tokens", "tokens_per_second", "plateau", "idle_sockets"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    levels = [int(x) for x in str(cfg["levels"]).split(",")]
    webs = [int(x) for x in args.web.split(",")]

    require_services()
    if max(webs) > 1:
        from assistant.devstack import proxy

        if proxy.find_nginx(dict(os.environ)) is None:  # say so now, not after --web 1's run
            raise SystemExit(proxy.missing_nginx_message(max(webs), dict(os.environ)))
    setup_django()
    info = machine_info()
    print(machine_line(info), flush=True)
    cookies = prepare(cfg["users"])
    model = ModelServer(cfg["tokens"], cfg["tokens_per_second"])
    direct_rows: dict[int, dict] = {}
    started = time.monotonic()
    try:
        # Warm-up of the direct path too (the openai client's first request is slower).
        direct_level(model.base_url, cookies, rate=2, count=2, cfg=cfg)
        results = [bench_topology(w, model, cookies, levels, cfg, direct_rows) for w in webs]
    finally:
        model.stop()
    report(results, cfg)
    payload = {
        "machine": info,
        "config": cfg,
        "wall_seconds": round(time.monotonic() - started),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "direct": direct_rows,
        "topologies": results,
    }
    path = results_dir() / ("chat_load-quick.json" if args.quick else "chat_load.json")
    write_json(path, payload)
    print(f"results: {path} ({payload['wall_seconds']} s)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-model"]:
        serve_model(int(sys.argv[2]), float(sys.argv[3]))
    else:
        main()
